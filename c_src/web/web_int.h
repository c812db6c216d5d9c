/* What the files of c_src/web share: the one server's state, the per-sandbox cache fed
 * by the event tap, and each concern's entry points. */
#ifndef SBX_WEB_WEB_INT_H
#define SBX_WEB_WEB_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct evhttp;
struct evhttp_bound_socket;
struct web_conncap;
struct evhttp_request;
struct evbuffer;
struct event;
struct event_base;
struct sbx_node;
struct sbx_core;
struct sbx_sandbox;

/* Limits on clients (README: HTTP). */
#define WEB_MAX_HEADERS 8192     /* bytes of request line + headers */
#define WEB_MAX_BODY 4096        /* bytes of a request body (the login form) */
#define WEB_TIMEOUT_S 10         /* an idle or slow connection is closed after this */
#define WEB_MAX_SSE 64           /* event streams open at once */
#define WEB_MAX_CONNS 1024       /* connections open at once, by default */
#define WEB_SSE_BACKLOG (256 << 10) /* bytes queued to one stream before events are dropped */
#define WEB_SSE_PING_S 15        /* a comment line keeps idle streams and proxies alive */
#define WEB_SPARK 60             /* samples kept per sandbox for the sparklines */
#define WEB_HISTORY 16           /* status changes kept per sandbox */
#define WEB_BUCKETS 1024

/* One status change. */
struct web_change {
    int64_t ts;
    uint8_t from, to; /* enum sbx_status */
};

/* What the tap has seen of one sandbox (removed when the sandbox is gone). */
struct web_entry {
    struct web_entry *next;
    char id[SBX_ID_MAX + 1];
    int have_sample;
    double cpu_percent;
    uint64_t memory_bytes, memory_limit_bytes, rx_bytes;
    int have_rx;
    double cpu_seconds;     /* integrated from cpu_percent between samples */
    int64_t sample_mono_ms; /* of the last sample */
    float spark_cpu[WEB_SPARK];
    float spark_mem[WEB_SPARK]; /* MiB */
    unsigned spark_n, spark_head;
    struct web_change hist[WEB_HISTORY];
    unsigned hist_n, hist_head;
};

struct web_sse;

struct web {
    struct event_base *base;
    struct sbx_node *node;
    struct evhttp *http;
    char listen_url[96];
    int has_token;
    char token[256];
    char session[65]; /* cookie value: hex SHA-256 of a random salt and the token */
    struct web_entry *buckets[WEB_BUCKETS];
    size_t entries;
    struct web_sse *sse;
    size_t sse_count;
    struct event *ping;
    struct web_conncap *conncap;
    uint64_t requests, unauthorized, sse_dropped;
};

/* cache.c: the tap and the cache. */
void web_cache_install(struct web *w);
void web_cache_free(struct web *w);
struct web_entry *web_cache_find(struct web *w, const char *id);
/* CPU seconds used by sb so far, as well as known (exact for process sandboxes). */
double web_cache_cpu_seconds(const struct sbx_sandbox *sb, const struct web_entry *e);

/* conncap.c: the cap on open connections. install: 0, or -1 when out of memory. */
int web_conncap_install(struct web *w, struct evhttp_bound_socket *bound, size_t max);
void web_conncap_free(struct web *w);
size_t web_conncap_open(const struct web *w);
size_t web_conncap_max(const struct web *w);
uint64_t web_conncap_pauses(const struct web *w); /* times the cap was reached */

/* metrics.c: GET /metrics into out. */
void web_metrics_render(struct web *w, struct evbuffer *out);

/* sse.c */
void web_sse_open(struct web *w, struct evhttp_request *req, const char *id);
/* 1 if some stream wants topic events of sandbox id. */
int web_sse_wants(struct web *w, const char *id, enum sbx_topic topic);
/* Sends an event (JSON object, stolen) to every stream that wants it. */
void web_sse_publish(struct web *w, const char *id, enum sbx_topic topic, json_t *ev);
void web_sse_close_all(struct web *w);

/* json.c */
json_t *web_json_str(const char *s, size_t len);
/* A term (encoded, no version byte) as JSON; NULL on a term it cannot read. */
json_t *web_term_json(const char *buf, size_t len);
json_t *web_sandbox_json(struct web *w, const struct sbx_sandbox *sb, int detail);
void web_api(struct web *w, struct evhttp_request *req, const char *path);

/* server.c: replies. body is sent as is. */
void web_reply(struct evhttp_request *req, int code, const char *type, const char *body,
               size_t len);
void web_reply_json(struct evhttp_request *req, int code, json_t *j); /* steals j */
int web_authorized(struct web *w, struct evhttp_request *req);

/* page.c (generated from page.html by the Makefile). */
extern const unsigned char web_page_html[];
extern const unsigned int web_page_html_len;

#endif
