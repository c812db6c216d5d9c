/* Per-peer cookies: the cookie this node proves and expects with one named peer (a BEAM
 * node a sandbox hosts has its own cookie); every other peer uses the node's own. */
#include <stdlib.h>
#include <string.h>

#include "dist/handshake.h"
#include "dist/node.h"

/* Wipes and frees one entry. */
static void entry_free(struct sbx_peer_cookie *e) {
    memset(e->cookie, 0, sizeof e->cookie);
    free(e);
}

/* See node.h. The strings are copied; the node owns the entry until forget/clear/stop. */
int sbx_node_set_peer_cookie(struct sbx_node *node, const char *peer_name, const char *cookie) {
    size_t nlen = strlen(peer_name), clen = strlen(cookie);
    if (!sbx_node_name_valid(peer_name, nlen) || clen == 0 || clen > SBX_COOKIE_MAX)
        return -1;
    for (struct sbx_peer_cookie *e = node->peer_cookies; e != NULL; e = e->next) {
        if (strcmp(e->peer, peer_name) == 0) {
            memset(e->cookie, 0, sizeof e->cookie);
            memcpy(e->cookie, cookie, clen + 1);
            return 0;
        }
    }
    struct sbx_peer_cookie *e = calloc(1, sizeof *e);
    if (e == NULL)
        return -1;
    memcpy(e->peer, peer_name, nlen + 1);
    memcpy(e->cookie, cookie, clen + 1);
    e->next = node->peer_cookies;
    node->peer_cookies = e;
    return 0;
}

/* See node.h. */
void sbx_node_forget_peer_cookie(struct sbx_node *node, const char *peer_name) {
    for (struct sbx_peer_cookie **pp = &node->peer_cookies; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->peer, peer_name) == 0) {
            struct sbx_peer_cookie *e = *pp;
            *pp = e->next;
            entry_free(e);
            return;
        }
    }
}

/* See node.h. Linear: peers with their own cookie are few (one per BEAM sandbox). */
const char *sbx_node_cookie_for(const struct sbx_node *node, const char *peer_name) {
    for (const struct sbx_peer_cookie *e = node->peer_cookies; e != NULL; e = e->next)
        if (strcmp(e->peer, peer_name) == 0)
            return e->cookie;
    return node->cookie;
}

/* See node.h. Linear, like cookie_for. */
int sbx_node_has_peer_cookie(const struct sbx_node *node, const char *peer_name) {
    for (const struct sbx_peer_cookie *e = node->peer_cookies; e != NULL; e = e->next)
        if (strcmp(e->peer, peer_name) == 0)
            return 1;
    return 0;
}

/* See node.h. */
void sbx_node_clear_peer_cookies(struct sbx_node *node) {
    while (node->peer_cookies != NULL) {
        struct sbx_peer_cookie *e = node->peer_cookies;
        node->peer_cookies = e->next;
        entry_free(e);
    }
}
