/* HTTP over libcurl's multi_socket interface on the daemon's libevent loop, in the
 * pattern of curl's docs/examples/multi-event.c and hiperfifo.c:
 *
 *   curl --socket callback--> one struct sock per socket curl uses, holding an event for
 *                             the directions curl wants (replaced when they change,
 *                             freed on CURL_POLL_REMOVE);
 *   curl --timer callback---> the one timer event (-1 deletes it, 0 fires it at once);
 *   socket or timer event --> drive(): curl_multi_socket_action, then settle().
 *
 * Re-entrancy. curl refuses curl_multi_add_handle and curl_multi_remove_handle while it
 * is running one of its callbacks (CURLM_RECURSIVE_API_CALL), and on_data runs inside
 * curl's write callback. So while h->in_curl is set, a new request waits on the list in
 * state QUEUED and a cancelled one is only marked; settle() adds and removes them once
 * curl_multi_socket_action has returned. Completed transfers are first all taken out of
 * curl (curl_multi_info_read, then remove each handle, which invalidates its message),
 * then reported one by one, so that an on_done that cancels another finished request,
 * starts new ones or frees h finds a consistent state. h->depth counts the caller's
 * callbacks running; sbx_http_free inside one only marks h dead, and the outermost
 * frame of ours (drive, or the write callback returning 0 to curl) frees it.
 *
 * Each request is a struct req on h's list from sbx_http_request until freed; cancel
 * finds it by id (a list walk: a daemon has at most a few thousand requests open). */
#define _GNU_SOURCE
#include "net/http.h"

#include "util/log.h"

#include <curl/curl.h>
#include <event2/event.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define METHOD_MAX 16
#define RECV_BUFFER (64L * 1024)  /* per transfer: on_data pieces are at most this */
#define CONNECT_TIMEOUT_MS 10000L
#define MAX_IDLE_CONNS 16L          /* connections kept open for reuse after a burst */

enum req_state {
    REQ_QUEUED,  /* made while curl was running a callback: not added to curl yet */
    REQ_ACTIVE,  /* in curl's multi handle */
    REQ_DONE,    /* out of curl, waiting in a batch to be reported */
    REQ_CALLING  /* its on_done is running */
};

struct req {
    struct req *next, *prev; /* h->reqs */
    struct req *done_next;   /* the batch being reported */
    struct sbx_http *h;
    uint64_t id, key;
    enum req_state state;
    int cancelled;
    int add_failed;          /* QUEUED and curl refused it: report as a failure */
    int mode;                /* 0 not known yet, 1 stream to on_data, 2 collect */
    int too_large;
    CURLcode result;
    CURL *easy;
    struct curl_slist *hdrs;
    sbx_http_data_fn on_data;
    sbx_http_done_fn on_done;
    char *body;
    size_t len, cap, max_body;
    char errbuf[CURL_ERROR_SIZE];
    char errmsg[CURL_ERROR_SIZE + SBX_HTTP_UNIX_MAX + 64];
};

struct sock {
    struct sock *next, *prev; /* h->socks */
    curl_socket_t fd;
    struct event *ev;
};

struct sbx_http {
    struct event_base *base;
    CURLM *multi;
    struct event *timer;
    struct req *reqs;
    struct sock *socks;
    struct sbx_http_endpoint ep;
    char base_url[SBX_HTTP_HOST_MAX + 32];
    uint64_t next_id;
    size_t in_flight;  /* requests whose callbacks may still run */
    size_t queued;     /* QUEUED requests (settle adds them) */
    size_t doomed;     /* cancelled QUEUED/ACTIVE requests (settle frees them) */
    int in_curl;       /* inside curl_multi_socket_action */
    int depth;         /* the caller's callbacks running */
    int dead;          /* sbx_http_free called inside a callback */
    int global_ref;    /* curl_global_init succeeded */
    void *user;
};

/* ---- endpoint -------------------------------------------------------------------- */

/* Copies src into dst[cap] if it fits. 0, or -1 with dst unchanged. */
static int copy_str(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap)
        return -1;
    memcpy(dst, src, n + 1);
    return 0;
}

/* Writes dir/name into out[cap] and tells whether that file is readable. 1 readable,
 * 0 not, -1 the path does not fit (out then undefined). */
static int cert_path_of(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    return access(out, R_OK) == 0;
}

/* Parses "host[:port]" or "[v6][:port]" (optionally followed by one "/") into e's host
 * and port (default_port when absent). 0, or -1 with *why set; e may be half-written. */
static int parse_host_port(struct sbx_http_endpoint *e, const char *s, uint16_t default_port,
                           const char **why) {
    const char *host = s, *host_end, *rest;
    int rc = -1;

    if (*s == '[') {
        host = s + 1;
        host_end = strchr(host, ']');
        if (!host_end) {
            *why = "DOCKER_HOST: unterminated [ in tcp address";
            goto done;
        }
        rest = host_end + 1;
    } else {
        host_end = s + strcspn(s, ":/");
        rest = host_end;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0 || hlen >= sizeof e->host) {
        *why = "DOCKER_HOST: empty or too long host in tcp address";
        goto done;
    }
    for (size_t i = 0; i < hlen; i++) {
        char c = host[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '-' || c == '_' || (c == ':' && *s == '[');
        if (!ok) {
            *why = "DOCKER_HOST: bad character in tcp host";
            goto done;
        }
    }
    memcpy(e->host, host, hlen);
    e->host[hlen] = '\0';
    e->port = default_port;
    if (*rest == ':') {
        unsigned long port = 0;
        const char *p = rest + 1;
        if (!(*p >= '0' && *p <= '9')) {
            *why = "DOCKER_HOST: bad port in tcp address";
            goto done;
        }
        while (*p >= '0' && *p <= '9' && port <= 65535)
            port = port * 10 + (unsigned long)(*p++ - '0');
        if (port == 0 || port > 65535) {
            *why = "DOCKER_HOST: bad port in tcp address";
            goto done;
        }
        e->port = (uint16_t)port;
        rest = p;
    }
    if (*rest == '/')
        rest++;
    if (*rest != '\0') {
        *why = "DOCKER_HOST: unexpected text after the tcp address";
        goto done;
    }
    rc = 0;
done:
    return rc;
}

int sbx_http_endpoint_parse(struct sbx_http_endpoint *ep, const char *docker_host, int tls,
                            int tls_verify, const char *cert_dir, const char **why) {
    struct sbx_http_endpoint local, *e = &local;
    const char *dummy;
    int rc = -1;

    if (!why)
        why = &dummy;
    memset(e, 0, sizeof *e);
    if (!docker_host || !*docker_host)
        docker_host = "unix://" SBX_HTTP_DEFAULT_UNIX;
    if (strncmp(docker_host, "unix://", 7) == 0) {
        const char *path = docker_host + 7;
        if (path[0] != '/') {
            *why = "DOCKER_HOST: unix socket path must be absolute (unix:///path)";
            goto done;
        }
        if (copy_str(e->unix_path, sizeof e->unix_path, path) != 0) {
            *why = "DOCKER_HOST: unix socket path too long";
            goto done;
        }
    } else if (strncmp(docker_host, "tcp://", 6) == 0) {
        int secure = tls || tls_verify;
        if (parse_host_port(e, docker_host + 6, secure ? 2376 : 2375, why) != 0)
            goto done;
        e->tls = secure;
        e->tls_verify = tls_verify != 0;
        if (secure) {
            int ca, cert, key;
            if (!cert_dir || !*cert_dir) {
                *why = "DOCKER_CERT_PATH: no certificate folder";
                goto done;
            }
            ca = cert_path_of(e->ca_file, sizeof e->ca_file, cert_dir, "ca.pem");
            cert = cert_path_of(e->cert_file, sizeof e->cert_file, cert_dir, "cert.pem");
            key = cert_path_of(e->key_file, sizeof e->key_file, cert_dir, "key.pem");
            if (ca < 0 || cert < 0 || key < 0) {
                *why = "DOCKER_CERT_PATH: path too long";
                goto done;
            }
            if (tls_verify && !ca) {
                *why = "DOCKER_TLS_VERIFY: DOCKER_CERT_PATH/ca.pem is not readable";
                goto done;
            }
            if (!tls_verify)
                e->ca_file[0] = '\0';
            if (!cert || !key) {
                e->cert_file[0] = '\0';
                e->key_file[0] = '\0';
            }
        }
    } else {
        *why = "DOCKER_HOST: unsupported scheme (use unix:// or tcp://)";
        goto done;
    }
    *ep = *e;
    rc = 0;
done:
    return rc;
}

/* DOCKER_* switches: set and non-empty means on. */
static int env_on(const char *name) {
    const char *v = getenv(name);
    return v && *v;
}

int sbx_http_endpoint_from_env(struct sbx_http_endpoint *ep, const char **why) {
    const char *cert_path = getenv("DOCKER_CERT_PATH");
    char dflt[SBX_HTTP_FILE_MAX];

    if (!cert_path || !*cert_path) {
        const char *home = getenv("HOME");
        dflt[0] = '\0';
        if (home && *home) {
            int n = snprintf(dflt, sizeof dflt, "%s/.docker", home);
            if (n < 0 || (size_t)n >= sizeof dflt)
                dflt[0] = '\0';
        }
        cert_path = dflt;
    }
    return sbx_http_endpoint_parse(ep, getenv("DOCKER_HOST"), env_on("DOCKER_TLS"),
                                   env_on("DOCKER_TLS_VERIFY"), cert_path, why);
}

/* ---- requests: lifetime ------------------------------------------------------------ */

/* Unlinks r from h and frees it with its curl handle, which must not be in curl's multi
 * handle any more. Safe on a half-built r (easy or hdrs NULL). */
static void req_free(struct sbx_http *h, struct req *r) {
    if (r->prev)
        r->prev->next = r->next;
    else if (h->reqs == r)
        h->reqs = r->next;
    if (r->next)
        r->next->prev = r->prev;
    if (r->easy)
        curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->hdrs);
    free(r->body);
    free(r);
}

/* Finds a request the caller may still cancel. NULL if none. */
static struct req *req_find(struct sbx_http *h, uint64_t id) {
    for (struct req *r = h->reqs; r; r = r->next)
        if (r->id == id)
            return r;
    return NULL;
}

/* ---- curl callbacks ---------------------------------------------------------------- */

static void drive(struct sbx_http *h, curl_socket_t fd, int ev_bitmask);

/* A socket curl uses is ready: let curl work, then report what finished. */
static void on_sock_event(evutil_socket_t fd, short what, void *arg) {
    struct sbx_http *h = arg;
    int flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);
    drive(h, fd, flags);
}

/* curl's timeout expired (or it asked for "as soon as possible"). */
static void on_timer_event(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    drive(arg, CURL_SOCKET_TIMEOUT, 0);
}

/* Frees a socket's event and bookkeeping. The socket itself is curl's. */
static void sock_free(struct sbx_http *h, struct sock *sk) {
    if (sk->prev)
        sk->prev->next = sk->next;
    else if (h->socks == sk)
        h->socks = sk->next;
    if (sk->next)
        sk->next->prev = sk->prev;
    if (sk->ev)
        event_free(sk->ev);
    free(sk);
}

/* CURLMOPT_SOCKETFUNCTION: watch s for what curl wants, or stop watching it. Returns 0,
 * or -1 (curl then fails the transfer) when memory runs out. */
static int on_curl_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp) {
    struct sbx_http *h = userp;
    struct sock *sk = socketp;
    short kind = EV_PERSIST;
    int rc = -1;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (sk) {
            curl_multi_assign(h->multi, s, NULL);
            sock_free(h, sk);
        }
        rc = 0;
        goto done;
    }
    if (!sk) {
        sk = calloc(1, sizeof *sk);
        if (!sk)
            goto done;
        sk->fd = s;
        sk->next = h->socks;
        if (h->socks)
            h->socks->prev = sk;
        h->socks = sk;
        curl_multi_assign(h->multi, s, sk);
    }
    if (what & CURL_POLL_IN)
        kind |= EV_READ;
    if (what & CURL_POLL_OUT)
        kind |= EV_WRITE;
    if (sk->ev)
        event_free(sk->ev);
    sk->ev = event_new(h->base, s, kind, on_sock_event, h);
    if (!sk->ev || event_add(sk->ev, NULL) != 0)
        goto done;
    rc = 0;
done:
    return rc;
}

/* CURLMOPT_TIMERFUNCTION: one timer; -1 deletes it, 0 means "soon" (from the loop, never
 * from here: curl must not be re-entered). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    struct sbx_http *h = userp;
    (void)multi;
    if (timeout_ms < 0)
        return evtimer_del(h->timer) == 0 ? 0 : -1;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    return evtimer_add(h->timer, &tv) == 0 ? 0 : -1;
}

/* Appends n bytes to r's collected body (kept NUL-terminated), within max_body. 0, or -1
 * (too large, marked, or out of memory) with the body unchanged. */
static int body_append(struct req *r, const char *p, size_t n) {
    if (n > r->max_body - r->len) {
        r->too_large = 1;
        return -1;
    }
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + n + 1)
            cap *= 2;
        if (cap > r->max_body + 1)
            cap = r->max_body + 1;
        char *b = realloc(r->body, cap);
        if (!b)
            return -1;
        r->body = b;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, n);
    r->len += n;
    r->body[r->len] = '\0';
    return 0;
}

/* CURLOPT_WRITEFUNCTION: a piece of the body. Streams it (2xx with on_data) or collects
 * it. Returning anything but n makes curl abort the transfer (CURLE_WRITE_ERROR): done
 * for a cancelled request, a dead h, a body past max_body. */
static size_t on_curl_write(char *p, size_t size, size_t nmemb, void *userdata) {
    struct req *r = userdata;
    struct sbx_http *h = r->h;
    size_t n = size * nmemb;

    if (r->cancelled || h->dead)
        return 0;
    if (r->mode == 0) {
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        r->mode = (r->on_data && code >= 200 && code < 300) ? 1 : 2;
    }
    if (r->mode == 2)
        return body_append(r, p, n) == 0 ? n : 0;
    if (n > 0) {
        h->depth++;
        r->on_data(h, r->key, p, n);
        h->depth--;
    }
    return (r->cancelled || h->dead) ? 0 : n;
}

/* ---- driving curl and reporting ---------------------------------------------------- */

static void destroy(struct sbx_http *h);

/* The message for a failed transfer, in r->errmsg. */
static const char *req_error(struct req *r) {
    const char *kind = "transport";
    const char *detail = r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->result);

    if (r->add_failed) {
        kind = "transport";
        detail = "curl refused the request";
    } else if (r->too_large) {
        snprintf(r->errmsg, sizeof r->errmsg,
                 "too large: response body exceeds max_body (%zu bytes)", r->max_body);
        return r->errmsg;
    }
    switch (r->result) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        kind = "connect";
        break;
    case CURLE_OPERATION_TIMEDOUT: {
        /* Timed out before the request could be sent: the endpoint is unreachable. */
        long sent = 0;
        curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &sent);
        kind = sent > 0 ? "timeout" : "connect";
        break;
    }
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_INVALIDCERTSTATUS:
        kind = "tls";
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        /* An alert read or written after the handshake (OpenSSL names itself). */
        if (r->h->ep.tls && strstr(detail, "SSL") != NULL)
            kind = "tls";
        break;
    default:
        break;
    }
    if (strcmp(kind, "connect") == 0 && r->h->ep.unix_path[0])
        snprintf(r->errmsg, sizeof r->errmsg, "connect: %s (unix socket %s)", detail,
                 r->h->ep.unix_path);
    else
        snprintf(r->errmsg, sizeof r->errmsg, "%s: %s", kind, detail);
    return r->errmsg;
}

/* Calls r's on_done. */
static void report(struct sbx_http *h, struct req *r) {
    r->state = REQ_CALLING;
    h->in_flight--;
    h->depth++;
    if (r->result == CURLE_OK && !r->add_failed) {
        long code = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        if (r->mode == 0)
            r->mode = (r->on_data && code >= 200 && code < 300) ? 1 : 2;
        if (r->mode == 1)
            r->on_done(h, r->key, (int)code, NULL, 0, NULL);
        else
            r->on_done(h, r->key, (int)code, r->body ? r->body : "", r->len, NULL);
    } else {
        r->on_done(h, r->key, 0, NULL, 0, req_error(r));
    }
    h->depth--;
}

/* Once curl has returned: frees cancelled requests, adds queued ones, then takes every
 * finished transfer out of curl and reports them in order. Frees h if it died. */
static void settle(struct sbx_http *h) {
    struct req *batch = NULL, **tail = &batch, *r, *next;
    CURLMsg *m;
    int left;

    if (h->dead)
        goto out;
    for (r = h->reqs; r && h->doomed; r = next) {
        next = r->next;
        if (r->cancelled && (r->state == REQ_QUEUED || r->state == REQ_ACTIVE)) {
            if (r->state == REQ_QUEUED)
                h->queued--;
            else
                curl_multi_remove_handle(h->multi, r->easy);
            h->doomed--;
            req_free(h, r);
        }
    }
    /* The list is newest first: add the queued ones oldest first. */
    for (r = h->reqs; h->queued && r && r->next; r = r->next)
        ;
    for (; r && h->queued; r = r->prev) {
        if (r->state != REQ_QUEUED)
            continue;
        h->queued--;
        if (curl_multi_add_handle(h->multi, r->easy) == CURLM_OK) {
            r->state = REQ_ACTIVE;
        } else {
            r->state = REQ_DONE;
            r->add_failed = 1;
            *tail = r;
            tail = &r->done_next;
        }
    }
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode result = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        r = (struct req *)priv;
        curl_multi_remove_handle(h->multi, easy); /* m is invalid from here */
        if (!r)
            continue;
        r->result = result;
        r->state = REQ_DONE;
        r->done_next = NULL;
        *tail = r;
        tail = &r->done_next;
    }
    for (r = batch; r; r = next) {
        next = r->done_next;
        if (!r->cancelled && !h->dead)
            report(h, r);
        req_free(h, r);
    }
out:
    if (h->dead)
        destroy(h);
}

/* Lets curl act on fd (or on its timeout), then settles. h may be freed on return. */
static void drive(struct sbx_http *h, curl_socket_t fd, int ev_bitmask) {
    int running = 0;
    h->in_curl = 1;
    CURLMcode rc = curl_multi_socket_action(h->multi, fd, ev_bitmask, &running);
    h->in_curl = 0;
    if (rc != CURLM_OK)
        SBX_WARN("curl_multi_socket_action failed", "err=\"%s\"", curl_multi_strerror(rc));
    settle(h);
}

/* ---- the client --------------------------------------------------------------------- */

/* Frees h and everything it holds, without callbacks. Outside curl and callbacks. */
static void destroy(struct sbx_http *h) {
    if (h->multi) {
        for (struct req *r = h->reqs; r; r = r->next)
            if (r->state == REQ_ACTIVE)
                curl_multi_remove_handle(h->multi, r->easy);
    }
    while (h->reqs)
        req_free(h, h->reqs);
    if (h->multi)
        curl_multi_cleanup(h->multi); /* may still call on_curl_socket / on_curl_timer */
    while (h->socks)
        sock_free(h, h->socks);
    if (h->timer)
        event_free(h->timer);
    if (h->global_ref)
        curl_global_cleanup();
    free(h);
}

struct sbx_http *sbx_http_new(struct event_base *base, const struct sbx_http_endpoint *ep) {
    struct sbx_http *h = calloc(1, sizeof *h);
    const curl_version_info_data *ver;
    const char *why = "out of memory";
    int ok = 0;

    if (!h)
        goto done;
    h->base = base;
    h->next_id = 1;
    if (ep) {
        h->ep = *ep;
    } else if (copy_str(h->ep.unix_path, sizeof h->ep.unix_path, SBX_HTTP_DEFAULT_UNIX) != 0) {
        goto done;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        why = "curl_global_init failed";
        goto done;
    }
    h->global_ref = 1;
    ver = curl_version_info(CURLVERSION_NOW);
    if (h->ep.unix_path[0]) {
        if (!(ver->features & CURL_VERSION_UNIX_SOCKETS)) {
            why = "this libcurl has no unix socket support (CURL_VERSION_UNIX_SOCKETS)";
            goto done;
        }
        snprintf(h->base_url, sizeof h->base_url, "http://localhost");
    } else {
        if (!h->ep.host[0] || h->ep.port == 0) {
            why = "endpoint has neither a unix socket nor a tcp host and port";
            goto done;
        }
        if (h->ep.tls && !(ver->features & CURL_VERSION_SSL)) {
            why = "this libcurl has no TLS support";
            goto done;
        }
        int v6 = strchr(h->ep.host, ':') != NULL;
        snprintf(h->base_url, sizeof h->base_url, "%s://%s%s%s:%u", h->ep.tls ? "https" : "http",
                 v6 ? "[" : "", h->ep.host, v6 ? "]" : "", (unsigned)h->ep.port);
    }
    h->timer = evtimer_new(base, on_timer_event, h);
    h->multi = curl_multi_init();
    if (!h->timer || !h->multi)
        goto done;
    if (curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h) != CURLM_OK ||
        curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, MAX_IDLE_CONNS) != CURLM_OK) {
        why = "curl_multi_setopt failed";
        goto done;
    }
    ok = 1;
done:
    if (!ok) {
        SBX_ERROR("http client not created", "why=\"%s\"", why);
        if (h)
            destroy(h);
        h = NULL;
    }
    return h;
}

void sbx_http_free(struct sbx_http *h) {
    if (!h)
        return;
    if (h->depth > 0 || h->in_curl) {
        h->dead = 1; /* the frame that called back frees it */
        return;
    }
    destroy(h);
}

void sbx_http_set_user(struct sbx_http *h, void *user) {
    h->user = user;
}

void *sbx_http_user(const struct sbx_http *h) {
    return h->user;
}

size_t sbx_http_in_flight(const struct sbx_http *h) {
    return h->in_flight;
}

/* Checks req; NULL if fine, else why. */
static const char *req_invalid(const struct sbx_http_req *req) {
    size_t n;

    if (!req->method || !req->path || !req->on_done)
        return "method, path and on_done are required";
    n = strlen(req->method);
    if (n == 0 || n > METHOD_MAX || strspn(req->method, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != n)
        return "bad method";
    if (req->path[0] != '/')
        return "path must start with /";
    for (const char *p = req->path; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            return "path must be URL-encoded printable ASCII";
    if (req->body_len > 0 && !req->body)
        return "body_len without body";
    if (req->timeout_ms < 0)
        return "negative timeout";
    if (req->content_type && strpbrk(req->content_type, "\r\n"))
        return "bad content_type";
    for (const char *const *hd = req->headers; hd && *hd; hd++)
        if (!strchr(*hd, ':') || strpbrk(*hd, "\r\n"))
            return "bad header";
    return NULL;
}

/* Adds "Name: value" to *list. 0, or -1 with *list unchanged. */
static int add_header(struct curl_slist **list, const char *line) {
    struct curl_slist *l = curl_slist_append(*list, line);
    if (!l)
        return -1;
    *list = l;
    return 0;
}

uint64_t sbx_http_request(struct sbx_http *h, const struct sbx_http_req *req,
                          const char **why) {
    struct req *r = NULL;
    char *url = NULL;
    const char *dummy;
    const char *method;
    int has_body, bad = 0;
    uint64_t id = 0;

    if (!why)
        why = &dummy;
    *why = "out of memory";
    if (h->dead) {
        *why = "http client is being freed";
        goto done;
    }
    if ((*why = req_invalid(req)) != NULL)
        goto done;
    *why = "out of memory";
    method = req->method;
    has_body = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
               strcmp(method, "PATCH") == 0 || req->body_len > 0;
    if (has_body && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)) {
        *why = "GET and HEAD take no body";
        goto done;
    }
    r = calloc(1, sizeof *r);
    if (!r)
        goto done;
    r->h = h;
    r->key = req->key;
    r->on_data = req->on_data;
    r->on_done = req->on_done;
    r->max_body = req->max_body ? req->max_body : SBX_HTTP_MAX_BODY_DEFAULT;
    r->easy = curl_easy_init();
    if (!r->easy)
        goto done;
    size_t ulen = strlen(h->base_url) + strlen(req->path) + 1;
    url = malloc(ulen);
    if (!url)
        goto done;
    snprintf(url, ulen, "%s%s", h->base_url, req->path);

    /* Headers: no "Expect: 100-continue" wait; the body's type, or none without one. */
    if (add_header(&r->hdrs, "Expect:") != 0)
        goto done;
    if (has_body && req->body_len == 0) {
        if (add_header(&r->hdrs, "Content-Type:") != 0) /* not curl's form type either */
            goto done;
    } else if (has_body) {
        const char *ct = req->content_type ? req->content_type : "application/json";
        size_t clen = strlen(ct) + sizeof "Content-Type: ";
        char *line = malloc(clen);
        if (!line)
            goto done;
        snprintf(line, clen, "Content-Type: %s", ct);
        int hr = add_header(&r->hdrs, line);
        free(line);
        if (hr != 0)
            goto done;
    }
    for (const char *const *hd = req->headers; hd && *hd; hd++)
        if (add_header(&r->hdrs, *hd) != 0)
            goto done;

    CURL *e = r->easy;
    bad |= curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, RECV_BUFFER) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                            req->timeout_ms > 0 && req->timeout_ms < CONNECT_TIMEOUT_MS
                                ? req->timeout_ms
                                : CONNECT_TIMEOUT_MS) != CURLE_OK;
    if (req->timeout_ms > 0)
        bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms) != CURLE_OK;
    if (h->ep.unix_path[0]) {
        bad |= curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, h->ep.unix_path) != CURLE_OK;
    } else {
        bad |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
        if (h->ep.tls) {
            long verify = h->ep.tls_verify ? 1L : 0L;
            bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify) != CURLE_OK;
            bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L) != CURLE_OK;
            if (h->ep.ca_file[0])
                bad |= curl_easy_setopt(e, CURLOPT_CAINFO, h->ep.ca_file) != CURLE_OK;
            /* TLS 1.2, the version the engine's --tlsverify has always spoken. There the
             * engine's verdict on our certificate (or its absence) is part of the handshake,
             * so a refusal is reported as such, with its alert. Under TLS 1.3 it comes after
             * the handshake and is at times seen only as a reset connection. */
            bad |= curl_easy_setopt(e, CURLOPT_SSLVERSION,
                                    CURL_SSLVERSION_TLSv1_2 | CURL_SSLVERSION_MAX_TLSv1_2) !=
                   CURLE_OK;
            if (h->ep.cert_file[0] && h->ep.key_file[0]) {
                bad |= curl_easy_setopt(e, CURLOPT_SSLCERT, h->ep.cert_file) != CURLE_OK;
                bad |= curl_easy_setopt(e, CURLOPT_SSLKEY, h->ep.key_file) != CURLE_OK;
            }
        }
    }
    if (strcmp(method, "HEAD") == 0) {
        bad |= curl_easy_setopt(e, CURLOPT_NOBODY, 1L) != CURLE_OK;
    } else if (has_body) {
        bad |= curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                                (curl_off_t)req->body_len) != CURLE_OK;
        bad |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS,
                                req->body_len ? (const char *)req->body : "") != CURLE_OK;
        if (strcmp(method, "POST") != 0)
            bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
    } else {
        bad |= curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK;
        if (strcmp(method, "GET") != 0)
            bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK;
    }
    if (bad) {
        *why = "curl_easy_setopt failed";
        goto done;
    }

    r->id = h->next_id++;
    r->next = h->reqs;
    if (h->reqs)
        h->reqs->prev = r;
    h->reqs = r;
    if (h->in_curl) {
        r->state = REQ_QUEUED; /* curl forbids adding from its callbacks: settle() adds */
        h->queued++;
    } else if (curl_multi_add_handle(h->multi, r->easy) == CURLM_OK) {
        r->state = REQ_ACTIVE;
    } else {
        *why = "curl_multi_add_handle failed";
        goto done;
    }
    h->in_flight++;
    id = r->id;
    *why = NULL;
done:
    free(url);
    if (id == 0 && r)
        req_free(h, r);
    return id;
}

int sbx_http_cancel(struct sbx_http *h, uint64_t id) {
    struct req *r = id ? req_find(h, id) : NULL;
    int rc = -1;

    if (!r || r->cancelled || r->state == REQ_CALLING)
        goto done;
    r->cancelled = 1;
    h->in_flight--;
    if (r->state == REQ_DONE) {
        /* finished, in the batch being reported: settle() frees it without a call */
    } else if (h->in_curl) {
        h->doomed++; /* curl forbids removing from its callbacks: settle() does it */
    } else {
        if (r->state == REQ_ACTIVE)
            curl_multi_remove_handle(h->multi, r->easy);
        else
            h->queued--;
        req_free(h, r);
    }
    rc = 0;
done:
    return rc;
}
