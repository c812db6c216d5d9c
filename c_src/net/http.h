/* HTTP/1.1 client for the Docker Engine API: libcurl's multi interface driven by the
 * daemon's libevent loop. Never blocks, never exits or aborts on a curl error.
 *
 * One struct sbx_http per daemon, bound to one endpoint: a unix socket (default
 * /var/run/docker.sock) or TCP, optionally TLS with a client certificate. Requests run
 * concurrently, one connection per request in flight, over curl's connection cache
 * (connections kept alive for the next requests, at most 16 of them once idle). A
 * request's outcome arrives through its callbacks, run from the event loop and never
 * inside the call that started it:
 *
 *   on_data  (optional) each piece (up to 64 KiB) of a 2xx response body, in order, as
 *            it arrives: for streams that may never end (logs follow, events, stats,
 *            attach, exec). A response with any other status is not streamed: its body
 *            is collected and given to on_done, so that Docker's {"message": ...}
 *            reaches the caller.
 *   on_done  exactly once per request, unless it is cancelled (sbx_http_cancel) or the
 *            sbx_http is freed first: then no callback at all. Either
 *              status > 0, err NULL: the response arrived whole (any status: 200, 404,
 *              500 ...); body is the whole body, NUL-terminated (the NUL is not counted
 *              in len), or NULL with len 0 when it went to on_data; or
 *              status 0, body NULL, err set: the request failed below HTTP. err starts
 *              with one of these words, for callers that need to tell them apart:
 *                "connect:"   the endpoint could not be reached (engine down, no socket,
 *                             or no connection made before the timeout)
 *                "timeout:"   the request was sent, but timeout_ms passed before the
 *                             response was complete
 *                "too large:" the collected body passed max_body
 *                "tls:"       TLS handshake or certificate failure
 *                "transport:" anything else (connection closed mid-response, ...)
 *            body and err are valid during the call only.
 *
 * Callbacks get the caller's key (its own handle, for example a sandbox or exec id),
 * never a pointer that may dangle, and the sbx_http (with sbx_http_user for the
 * caller's context). From inside any callback the caller may start requests, cancel
 * any request (from on_data its own one too; in on_done its own one is over), and
 * free the sbx_http.
 *
 * Not thread-safe: every call from the thread that runs the event loop. */
#ifndef SBX_NET_HTTP_H
#define SBX_NET_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct sbx_http;

#define SBX_HTTP_DEFAULT_UNIX "/var/run/docker.sock"
#define SBX_HTTP_UNIX_MAX 108   /* sun_path, NUL included */
#define SBX_HTTP_HOST_MAX 256
#define SBX_HTTP_FILE_MAX 1024
#define SBX_HTTP_MAX_BODY_DEFAULT ((size_t)64 << 20)

/* Where the engine listens. A plain value (no pointers): copy it freely.
 * unix_path non-empty: HTTP over that unix socket, every other field unused.
 * Else TCP to host:port (an IPv6 host without brackets), https when tls, the daemon's
 * certificate (and its name) checked against ca_file when tls_verify, a client
 * certificate sent when cert_file and key_file are non-empty (PEM files). */
struct sbx_http_endpoint {
    char unix_path[SBX_HTTP_UNIX_MAX];
    char host[SBX_HTTP_HOST_MAX];
    uint16_t port;
    int tls;
    int tls_verify;
    char ca_file[SBX_HTTP_FILE_MAX];
    char cert_file[SBX_HTTP_FILE_MAX];
    char key_file[SBX_HTTP_FILE_MAX];
};

/* Fills *ep from Docker's conventions: docker_host as in DOCKER_HOST (NULL or "": the
 * default unix socket; "unix:///abs/path"; "tcp://host[:port]", "tcp://[v6addr][:port]",
 * port 2376 with TLS, else 2375). tls (DOCKER_TLS) or tls_verify (DOCKER_TLS_VERIFY)
 * non-zero make a TCP endpoint use TLS; tls_verify also checks the daemon's
 * certificate against cert_dir/ca.pem, which must then be readable. cert_dir/cert.pem
 * and cert_dir/key.pem are used as the client certificate when both are readable.
 * TLS settings are ignored for a unix socket, as docker does. Reads the file system
 * only to check those files. Returns 0, or -1 with *why set (static string) and *ep
 * unchanged. */
int sbx_http_endpoint_parse(struct sbx_http_endpoint *ep, const char *docker_host, int tls,
                            int tls_verify, const char *cert_dir, const char **why);

/* sbx_http_endpoint_parse with DOCKER_HOST, DOCKER_TLS, DOCKER_TLS_VERIFY (each set and
 * non-empty counts as on, as in the docker CLI) and DOCKER_CERT_PATH (default
 * $HOME/.docker) from the environment. Same return convention. */
int sbx_http_endpoint_from_env(struct sbx_http_endpoint *ep, const char **why);

/* Creates the client on base for ep (NULL: the default unix socket; copied, the caller
 * keeps ep). Fails, logging why, when curl lacks what ep needs (CURL_VERSION_UNIX_SOCKETS
 * for a unix socket, SSL for TLS) or on lack of memory. Connects to nothing yet: an
 * engine that is down shows as "connect:" errors of the requests. Takes a reference on
 * curl's global state (curl_global_init), given back by sbx_http_free. NULL on
 * failure, nothing left allocated. */
struct sbx_http *sbx_http_new(struct event_base *base, const struct sbx_http_endpoint *ep);

/* Cancels every request in flight without calling any of their callbacks, closes every
 * connection and socket, frees everything. Safe on NULL. Called from inside one of h's
 * callbacks, it takes effect when that callback returns (no further callback runs, and
 * h must not be used again by the caller either way). */
void sbx_http_free(struct sbx_http *h);

/* The caller's context pointer, for callbacks (NULL until set). */
void sbx_http_set_user(struct sbx_http *h, void *user);
void *sbx_http_user(const struct sbx_http *h);

/* Requests started and neither finished nor cancelled (callbacks pending). */
size_t sbx_http_in_flight(const struct sbx_http *h);

/* A piece of a 2xx response body (len > 0), valid during the call only. */
typedef void (*sbx_http_data_fn)(struct sbx_http *h, uint64_t key, const char *buf,
                                 size_t len);

/* The request's end; see the top of this file. */
typedef void (*sbx_http_done_fn)(struct sbx_http *h, uint64_t key, int status,
                                 const char *body, size_t len, const char *err);

struct sbx_http_req {
    const char *method;       /* "GET", "POST", "PUT", "DELETE", "HEAD" ... (A-Z only) */
    const char *path;         /* "/v1.41/containers/json?all=1": starts with '/', already
                                 URL-encoded (printable ASCII, no spaces) */
    const char *const *headers; /* optional extra "Name: value" lines, NULL-terminated
                                   (e.g. X-Registry-Auth) */
    const void *body;         /* optional request body (copied), body_len bytes */
    size_t body_len;
    const char *content_type; /* of the body; NULL: application/json (application/x-tar
                                 for archives). Not sent without a body. */
    long timeout_ms;          /* whole request, connection included; 0: none (streams) */
    size_t max_body;          /* bound on a collected body; 0: SBX_HTTP_MAX_BODY_DEFAULT */
    sbx_http_data_fn on_data; /* NULL: collect the body for on_done */
    sbx_http_done_fn on_done; /* required */
    uint64_t key;             /* passed back to both callbacks */
};

/* Starts a request (everything in req is copied; nothing needs to outlive the call).
 * POST, PUT and PATCH always send a body (empty if none given, with Content-Length 0);
 * GET and HEAD never do. Returns the request's id (> 0, never reused), or 0 with *why
 * set (static string; why may be NULL) when req is invalid, h is being freed, or
 * memory or curl fails: then no callback will run. */
uint64_t sbx_http_request(struct sbx_http *h, const struct sbx_http_req *req,
                          const char **why);

/* Cancels request id: none of its callbacks runs after this call, its connection is
 * closed. Returns 0, or -1 (nothing changed) when id is unknown, finished, already
 * cancelled, or is the request whose on_done is running. */
int sbx_http_cancel(struct sbx_http *h, uint64_t id);

#endif
