/* Node identity, listener, epmd registration, connection registry and signal sending. */
#define _GNU_SOURCE
#include "dist/node.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dist/conn.h"
#include "dist/epmd.h"
#include "dist/flags.h"
#include "util/clock.h"
#include "util/log.h"

enum { OP_LINK = 1, OP_SEND = 2, OP_EXIT = 3, OP_MONITOR_P_EXIT = 21, OP_ALIAS_SEND = 33 };

/* Listener callback: sbx_conn_accept takes the accepted fd (and closes it if it fails). */
static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg) {
    (void)l;
    sbx_conn_accept(arg, fd, sa, salen);
}

/* Listener error (for example EMFILE): logged only; the listener stays enabled. */
static void resume_accept_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

/* accept failed (out of descriptors, typically): pause accepting for a second rather
 * than spin on a listener that stays readable. */
static void accept_error_cb(struct evconnlistener *l, void *arg) {
    struct sbx_node *node = arg;
    struct timeval tv = {1, 0};
    SBX_WARN("accept failed; pausing accepts for 1 s", "errno=%d", EVUTIL_SOCKET_ERROR());
    evconnlistener_disable(l);
    event_base_once(node->base, -1, EV_TIMEOUT, resume_accept_cb, l, &tv);
}

/* epmd only ever closes the registration socket: on EOF or error
 * stop watching it; the fd itself stays open until sbx_node_stop. */
static void epmd_closed_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_node *node = arg;
    char buf[64];
    (void)what;
    if (read(fd, buf, sizeof buf) <= 0) {
        SBX_WARN("epmd closed the registration; peers can no longer find this node", "node=%s",
                 node->name);
        event_del(node->epmd_ev);
    }
}

/* See node.h. Zeroes *node first, so after a failure it is
 * safe to sbx_node_stop; cfg's strings are copied, not kept. */
int sbx_node_start(struct sbx_node *node, struct event_base *base,
                   const struct sbx_node_config *cfg, const char **why) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t slen = sizeof sa;
    char alive[SBX_NODE_NAME_MAX + 1];

    memset(node, 0, sizeof *node);
    node->epmd_fd = -1;
    node->base = base;
    *why = "invalid node name";
    if (!sbx_node_name_valid(cfg->name, strlen(cfg->name)))
        goto err;
    snprintf(node->name, sizeof node->name, "%s", cfg->name);
    snprintf(node->cookie, sizeof node->cookie, "%s", cfg->cookie);
    snprintf(alive, sizeof alive, "%s", cfg->name);
    *strchr(alive, '@') = '\0';
    node->flags = SBX_DFLAGS_OFFERED;
    node->handshake_timeout_ms = cfg->handshake_timeout_ms;
    node->net_ticktime_s = cfg->net_ticktime_s;
    node->max_packet = cfg->max_packet;
    node->max_outbuf = cfg->max_outbuf;
    node->tls = cfg->tls;
    node->started_mono_ms = sbx_mono_ms();
    if (getrandom(node->ref_counter, sizeof node->ref_counter, 0) != (ssize_t)sizeof node->ref_counter)
        node->ref_counter[1] = (uint32_t)sbx_wall_ms();
    *why = "out of memory";
    if (sbx_proc_table_init(&node->procs) != 0)
        goto err;
    if (sbx_strangers_init(&node->strangers, cfg->max_handshakes > 0 ? cfg->max_handshakes : 1024,
                           cfg->max_handshakes_per_addr > 0 ? cfg->max_handshakes_per_addr : 16) != 0)
        goto err;
    node->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (node->dns == NULL) {
        node->dns = evdns_base_new(base, 0);
        if (node->dns != NULL)
            evdns_base_load_hosts(node->dns, NULL);
    }
    if (node->dns == NULL)
        goto err;
    sa.sin_addr.s_addr = htonl(INADDR_ANY);
    /* The longest accept queue the kernel allows (it caps the backlog at net.core.somaxconn):
     * a flood of strangers is bounded by our own caps after accept; a queue shorter than the
     * flood drops SYNs, and a real peer whose SYN is dropped waits seconds for the retry. */
    node->listener = evconnlistener_new_bind(
        base, accept_cb, node, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
        INT_MAX, (struct sockaddr *)&sa, sizeof sa);
    *why = "cannot listen for distribution connections";
    if (node->listener == NULL)
        goto err;
    evconnlistener_set_error_cb(node->listener, accept_error_cb);
    if (getsockname(evconnlistener_get_fd(node->listener), (struct sockaddr *)&sa, &slen) != 0)
        goto err;
    node->port = ntohs(sa.sin_port);
    if (sbx_epmd_register(alive, node->port, &node->epmd_fd, &node->creation, why) != 0)
        goto err;
    node->epmd_ev = event_new(base, node->epmd_fd, EV_READ | EV_PERSIST, epmd_closed_cb, node);
    *why = "out of memory";
    if (node->epmd_ev == NULL || event_add(node->epmd_ev, NULL) != 0)
        goto err;
    SBX_INFO("node started", "node=%s port=%u creation=%u proto_dist=%s", node->name,
             node->port, node->creation, node->tls != NULL ? "inet_tls" : "inet_tcp");
    return 0;
err:
    sbx_node_stop(node);
    return -1;
}

/* At shutdown: release the work of every process that holds some, without signals. */
static void stop_one(struct sbx_proc *p, void *arg) {
    struct sbx_node *node = arg;
    if (p->ops != NULL && p->ops->kill != NULL) {
        p->ops->kill(p);
        sbx_proc_free(&node->procs, p);
    }
}

/* See node.h. Processes with a kill op release their work without sending signals;
 * waiters of connections fail (their callbacks run here). Wipes the cookie copy. */
void sbx_node_stop(struct sbx_node *node) {
    if (node->procs.buckets != NULL)
        sbx_proc_each(&node->procs, stop_one, node);
    while (node->conns != NULL)
        sbx_conn_destroy(node->conns);
    if (node->listener != NULL)
        evconnlistener_free(node->listener);
    if (node->epmd_ev != NULL)
        event_free(node->epmd_ev);
    if (node->epmd_fd >= 0)
        close(node->epmd_fd);
    if (node->dns != NULL)
        evdns_base_free(node->dns, 0);
    sbx_proc_table_free(&node->procs);
    sbx_strangers_free(&node->strangers);
    sbx_node_clear_peer_cookies(node);
    node->listener = NULL;
    node->epmd_ev = NULL;
    node->epmd_fd = -1;
    node->dns = NULL;
    memset(node->cookie, 0, sizeof node->cookie);
}

/* See node.h. Only lowers the cap: the table was sized for the one given at start. */
void sbx_node_lower_handshake_cap(struct sbx_node *node, size_t max) {
    if (max > 0 && max < node->strangers.max_total)
        node->strangers.max_total = max;
}

/* See node.h. The node keeps ownership; valid until the connection is destroyed. */
struct sbx_conn *sbx_node_conn_by_id(const struct sbx_node *node, uint64_t id) {
    for (struct sbx_conn *c = node->conns; c != NULL; c = c->next)
        if (c->id == id)
            return c->state == SBX_CONN_UP ? c : NULL;
    return NULL;
}

/* See node.h. The node keeps ownership; valid until the connection is destroyed. */
struct sbx_conn *sbx_node_conn_by_name(const struct sbx_node *node, const char *name) {
    for (struct sbx_conn *c = node->conns; c != NULL; c = c->next)
        if (c->state == SBX_CONN_UP && strcmp(c->peer_name, name) == 0)
            return c;
    return NULL;
}

/* See node.h. Counts only connections that are up. */
size_t sbx_node_conn_count(const struct sbx_node *node) {
    size_t n = 0;
    for (struct sbx_conn *c = node->conns; c != NULL; c = c->next)
        n += c->state == SBX_CONN_UP;
    return n;
}

/* See node.h. */
size_t sbx_node_proc_count(const struct sbx_node *node) { return node->procs.count; }

struct conn_down_ctx {
    struct sbx_node *node;
    uint64_t conn_id;
};

/* A link to a process behind a dead connection is an exit signal `noconnection`. */
static void conn_down_one(struct sbx_proc *p, void *arg) {
    struct conn_down_ctx *ctx = arg;
    int linked = 0;
    for (struct sbx_link *l = p->links; l != NULL; l = l->next)
        linked |= l->pid.conn_id == ctx->conn_id;
    sbx_proc_drop_conn(p, ctx->conn_id);
    if (linked && p->name == NULL && (p->ops == NULL || !p->ops->traps_exits)) {
        ei_x_buff r;
        ei_x_new(&r);
        ei_x_encode_atom(&r, "noconnection");
        sbx_node_proc_kill(ctx->node, p, r.buff, (size_t)r.index);
        ei_x_free(&r);
        return;
    }
    if (p->ops != NULL && p->ops->conn_down != NULL)
        p->ops->conn_down(p, ctx->conn_id);
}

/* See node.h. Unregistered processes linked through the connection are killed
 * with noconnection (their kill op runs); the others get their conn_down op. */
struct pid_list {
    uint32_t (*ids)[2];
    size_t n;
};

static void collect_pid(struct sbx_proc *p, void *arg) {
    struct pid_list *l = arg;
    l->ids[l->n][0] = p->num;
    l->ids[l->n][1] = p->serial;
    l->n++;
}

void sbx_node_conn_down(struct sbx_node *node, uint64_t conn_id) {
    struct conn_down_ctx ctx = {node, conn_id};
    /* Handling one process may end others (a cancelled create destroys its sandbox,
     * which answers that sandbox's pending calls), so walk a snapshot of the pids and
     * look each one up again. */
    struct pid_list l = {calloc(node->procs.count + 1, sizeof *l.ids), 0};
    if (l.ids == NULL) {
        sbx_proc_each(&node->procs, conn_down_one, &ctx);
        return;
    }
    sbx_proc_each(&node->procs, collect_pid, &l);
    for (size_t i = 0; i < l.n; i++) {
        struct sbx_proc *p = sbx_proc_find(&node->procs, l.ids[i][0], l.ids[i][1]);
        if (p != NULL)
            conn_down_one(p, &ctx);
    }
    free(l.ids);
}

/* See node.h. p is only read. */
int sbx_node_encode_self_pid(const struct sbx_node *node, ei_x_buff *x, const struct sbx_proc *p) {
    erlang_pid pid;
    memcpy(pid.node, node->name, strlen(node->name) + 1);
    pid.num = p->num;
    pid.serial = p->serial;
    pid.creation = node->creation;
    return ei_x_encode_pid(x, &pid);
}

/* See node.h. -1, with x unchanged, if the pid's connection is not up. */
int sbx_node_encode_rpid(const struct sbx_node *node, ei_x_buff *x, const struct sbx_rpid *rp) {
    const struct sbx_conn *c = sbx_node_conn_by_id(node, rp->conn_id);
    erlang_pid pid;
    if (c == NULL)
        return -1;
    memcpy(pid.node, c->peer_name, strlen(c->peer_name) + 1);
    pid.num = rp->num;
    pid.serial = rp->serial;
    pid.creation = rp->creation;
    return ei_x_encode_pid(x, &pid);
}

/* See node.h. Advances the node's reference counter, which starts at a random value. */
int sbx_node_make_ref(struct sbx_node *node, ei_x_buff *x) {
    erlang_ref ref;
    if (++node->ref_counter[0] == 0 && ++node->ref_counter[1] == 0)
        node->ref_counter[2]++;
    memcpy(ref.node, node->name, strlen(node->name) + 1);
    ref.len = 3;
    ref.n[0] = node->ref_counter[0] & 0x3ffff; /* the first word holds 18 bits */
    ref.n[1] = node->ref_counter[1] ^ (node->ref_counter[0] >> 18);
    ref.n[2] = node->ref_counter[2];
    ref.creation = node->creation;
    return ei_x_encode_ref(x, &ref);
}

/* See node.h. buf must have passed sbx_term_check. *out is written
 * only for a remote pid, with conn_id 0 if that node is not connected. */
int sbx_node_decode_pid(const struct sbx_node *node, const char *buf, int *index,
                        int *is_local, uint32_t *local_num, uint32_t *local_serial,
                        struct sbx_rpid *out) {
    erlang_pid pid;
    if (ei_decode_pid(buf, index, &pid) != 0)
        return -1;
    if (strcmp(pid.node, node->name) == 0) {
        /* A pid of an earlier incarnation names no live process (num is never 0). */
        int current = pid.creation == node->creation;
        *is_local = 1;
        *local_num = current ? pid.num : 0;
        *local_serial = current ? pid.serial : 0;
        return 0;
    }
    const struct sbx_conn *c = sbx_node_conn_by_name(node, pid.node);
    *is_local = 0;
    out->conn_id = c != NULL ? c->id : 0;
    out->num = pid.num;
    out->serial = pid.serial;
    out->creation = pid.creation;
    return 0;
}

/* See node.h. ctl and msg stay the caller's. Never frees the connection, but
 * it may start closing it (backlog over the limit), which also gives -1. */
int sbx_node_send(struct sbx_node *node, uint64_t conn_id, const ei_x_buff *ctl,
                  const ei_x_buff *msg) {
    struct sbx_conn *c = sbx_node_conn_by_id(node, conn_id);
    if (c == NULL)
        return -1;
    return sbx_conn_write_packet(c, ctl->buff, (size_t)ctl->index, msg ? msg->buff : NULL,
                                 msg ? (size_t)msg->index : 0, NULL, 0);
}

/* See node.h. msg stays the caller's; -1 when the peer is not connected or the write failed. */
int sbx_node_send_msg(struct sbx_node *node, const struct sbx_proc *from,
                      const struct sbx_rpid *to, const char *alias_ref, size_t alias_ref_len,
                      const ei_x_buff *msg) {
    struct sbx_conn *c = sbx_node_conn_by_id(node, to->conn_id);
    ei_x_buff ctl;
    int rc = -1;

    if (c == NULL)
        return -1;
    ei_x_new_with_version(&ctl);
    if (alias_ref != NULL && (c->flags & DFLAG_ALIAS)) {
        ei_x_encode_tuple_header(&ctl, 3);
        ei_x_encode_long(&ctl, OP_ALIAS_SEND);
        sbx_node_encode_self_pid(node, &ctl, from);
        ei_x_append_buf(&ctl, alias_ref, (int)alias_ref_len);
    } else {
        ei_x_encode_tuple_header(&ctl, 3);
        ei_x_encode_long(&ctl, OP_SEND);
        ei_x_encode_atom(&ctl, "");
        if (sbx_node_encode_rpid(node, &ctl, to) != 0)
            goto done;
    }
    rc = sbx_conn_write_packet(c, ctl.buff, (size_t)ctl.index, msg->buff, (size_t)msg->index,
                               NULL, 0);
done:
    ei_x_free(&ctl);
    return rc;
}

/* See node.h. p is invalid on return; signals to watchers that
 * are no longer connected are dropped. */
void sbx_node_proc_exit(struct sbx_node *node, struct sbx_proc *p, const char *reason,
                        size_t reason_len) {
    for (struct sbx_link *l = p->links; l != NULL; l = l->next) {
        ei_x_buff ctl;
        ei_x_new_with_version(&ctl);
        ei_x_encode_tuple_header(&ctl, 4);
        ei_x_encode_long(&ctl, OP_EXIT);
        sbx_node_encode_self_pid(node, &ctl, p);
        if (sbx_node_encode_rpid(node, &ctl, &l->pid) == 0) {
            ei_x_append_buf(&ctl, reason, (int)reason_len);
            sbx_node_send(node, l->pid.conn_id, &ctl, NULL);
        }
        ei_x_free(&ctl);
    }
    for (struct sbx_monitor *m = p->monitors; m != NULL; m = m->next) {
        ei_x_buff ctl;
        ei_x_new_with_version(&ctl);
        ei_x_encode_tuple_header(&ctl, 5);
        ei_x_encode_long(&ctl, OP_MONITOR_P_EXIT);
        if (m->by_name && p->name != NULL)
            ei_x_encode_atom(&ctl, p->name);
        else
            sbx_node_encode_self_pid(node, &ctl, p);
        if (sbx_node_encode_rpid(node, &ctl, &m->watcher) == 0) {
            ei_x_append_buf(&ctl, m->ref, (int)m->ref_len);
            ei_x_append_buf(&ctl, reason, (int)reason_len);
            sbx_node_send(node, m->watcher.conn_id, &ctl, NULL);
        }
        ei_x_free(&ctl);
    }
    sbx_proc_free(&node->procs, p);
}

/* See node.h. p is invalid on return. */
void sbx_node_proc_kill(struct sbx_node *node, struct sbx_proc *p, const char *reason,
                        size_t reason_len) {
    if (p->ops != NULL && p->ops->kill != NULL)
        p->ops->kill(p);
    sbx_node_proc_exit(node, p, reason, reason_len);
}
