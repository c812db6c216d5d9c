/* The HTTP side of sandboxd (--http): Prometheus metrics, health endpoints, a JSON API,
 * Server-Sent Events and the live view page, served by evhttp on the daemon's loop.
 * Off unless --http is given. */
#ifndef SBX_WEB_WEB_H
#define SBX_WEB_WEB_H

struct event_base;
struct sbx_node;

struct sbx_web_config {
    const char *listen; /* ADDR:PORT (IPv4 literal or localhost; port 0: any free one) */
    const char *token;  /* NULL: no token (loopback only, read-only) */
    size_t max_conns;   /* connections open at once; 0: WEB_MAX_CONNS */
    long nofile;        /* the open-file limit: the cap is at most an eighth of it */
};

/* Starts serving: binds, installs the event tap (core/stats.h). Call before the core
 * starts so that adopted sandboxes are sampled too. 0, or -1 with *why (static). */
int sbx_web_start(struct event_base *base, struct sbx_node *node,
                  const struct sbx_web_config *cfg, const char **why);

/* Stops serving: removes the tap, closes every connection, frees everything. Safe when
 * not started. */
void sbx_web_stop(void);

#endif
