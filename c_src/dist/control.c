/* Control message dispatch.
 *
 *   op  message                                  handling here
 *    1  LINK {1,From,To}                          link, or EXIT noproc if To is gone
 *    2  SEND {2,_,To} + Msg                       to the process's message handler
 *    3  EXIT {3,From,To,Reason}                   linked process died: unlink, kill To
 *    4  UNLINK {4,From,To}                        unlink
 *    6  REG_SEND {6,From,_,Name} + Msg            by registered name; unknown: dropped
 *    7  GROUP_LEADER                              ignored
 *    8  EXIT2 {8,From,To,Reason}                  exit/2: kill To (not system processes)
 *   12,13,16,18  _TT forms of 2,3,6,8             as above, trace token ignored
 *   19  MONITOR_P {19,From,PidOrName,Ref}         monitor, or MONITOR_P_EXIT noproc
 *   20  DEMONITOR_P {20,From,PidOrName,Ref}       remove
 *   21  MONITOR_P_EXIT                            to the watching process, as a message
 *   22,23  SEND_SENDER(_TT) {22,From,To} + Msg    as SEND
 *   24-28  PAYLOAD_* (exit reason as message)     as 3, 8, 21
 *   29,30  SPAWN_REQUEST(_TT) + Args              to the rpc layer's spawn handler
 *   31,32  SPAWN_REPLY(_TT) {31,ReqId,To,Flags,R} a refusal (R an atom) reaches To as
 *                                                {'DOWN', ReqId, process, R, spawn_failed}
 *   33,34  ALIAS_SEND(_TT) {33,From,Alias} + Msg  dropped: this node creates no aliases
 *   35  UNLINK_ID {35,Id,From,To}                 unlink, answer UNLINK_ID_ACK
 *   36  UNLINK_ID_ACK                             ignored
 *   other                                         ignored
 *
 * A fenced connection (c->fenced: its handshake used a per-peer cookie, so the peer is a
 * sandbox's own node, which runs code sandboxd does not trust) carries only what this
 * node asked for. It reaches only processes that serve that peer (sbx_proc_serve_peer:
 * the erpc calls made to it, the trace sink it was given): SEND, SEND_SENDER, MONITOR_P by
 * pid, MONITOR_P_EXIT and SPAWN_REPLY to those. Everything else is refused, answered where
 * the protocol lets a caller fail at once, and logged (at most one line per second per
 * connection):
 *   LINK                      EXIT noproc
 *   MONITOR_P (a name, or a   MONITOR_P_EXIT noproc (so gen_server:call({Name, N}, _)
 *     pid it may not reach)     exits with noproc)
 *   SPAWN_REQUEST             SPAWN_REPLY notsup (erpc:call / rpc:call fail at once)
 *   REG_SEND, SEND elsewhere, dropped
 *     EXIT, EXIT2, PAYLOAD_*
 * UNLINK, UNLINK_ID, DEMONITOR_P stay as they are: they only remove what the peer holds.
 */
#include "dist/control.h"

#include <limits.h>
#include <string.h>

#include "dist/conn.h"
#include "dist/node.h"
#include "dist/term_check.h"
#include "util/clock.h"
#include "util/log.h"

static sbx_spawn_handler spawn_handler;

/* See control.h. Process-wide; with no handler, spawn requests are dropped unanswered. */
void sbx_control_set_spawn_handler(sbx_spawn_handler h) { spawn_handler = h; }

/* See control.h. Writes a NUL-terminated UTF-8 name; buf must have passed sbx_term_check. */
int sbx_decode_atom(const char *buf, int *index, char out[MAXATOMLEN_UTF8]) {
    return ei_decode_atom_as(buf, index, out, MAXATOMLEN_UTF8, ERLANG_UTF8, NULL, NULL);
}

/* See control.h. Byte-identical encodings match without decoding; both must be validated terms. */
int sbx_ref_equal(const char *a, size_t alen, const char *b, size_t blen) {
    erlang_ref ra, rb;
    int ia = 0, ib = 0;
    if (alen == blen && memcmp(a, b, alen) == 0)
        return 1;
    if (ei_decode_ref(a, &ia, &ra) != 0 || ei_decode_ref(b, &ib, &rb) != 0)
        return 0;
    return ei_cmp_refs(&ra, &rb) == 0;
}

/* See control.h. *start points into buf; *index moves past the term. Validated buffers only:
 * the term's own lengths bound the walk, as they bound ei_skip_term's. term_check's walker
 * skips a large list or tuple several times faster than ei_skip_term (which decodes every
 * element); what it does not take (FLOAT_EXT) is left to ei_skip_term. */
int sbx_term_span(const char *buf, int *index, const char **start, size_t *len) {
    int s = *index;
    size_t used;
    if (sbx_term_check((const unsigned char *)buf + s, (size_t)INT_MAX - (size_t)s, &used) == 0) {
        *index = s + (int)used;
    } else if (ei_skip_term(buf, index) != 0) {
        return -1;
    }
    *start = buf + s;
    *len = (size_t)(*index - s);
    return 0;
}

/* Counts one refusal on fenced connection c and logs it, at most once a second per
 * connection (the line says how many went unlogged before it). `what` is a static text. */
static void fence_refuse(struct sbx_conn *c, const char *what) {
    int64_t now = sbx_mono_ms();
    if (c->fence_log_ms != 0 && now - c->fence_log_ms < 1000) {
        c->fence_unlogged++;
        return;
    }
    SBX_WARN("refused from a sandbox's node", "peer=%s what=\"%s\" unlogged_before=%llu",
             c->peer_name, what, (unsigned long long)c->fence_unlogged);
    c->fence_log_ms = now;
    c->fence_unlogged = 0;
}

/* p (NULL: none) if connection c may reach it: any process for an ordinary peer, only the
 * processes that serve it for a fenced one; else NULL, with the refusal counted. */
static struct sbx_proc *fence_filter(struct sbx_conn *c, struct sbx_proc *p, const char *what) {
    if (!c->fenced || p == NULL || sbx_proc_serves(p, c->peer_name))
        return p;
    fence_refuse(c, what);
    return NULL;
}

/* A decoded process identifier: ours (proc may be NULL if it is gone), or remote. */
struct who {
    int is_local;
    uint32_t num, serial;
    struct sbx_rpid remote;
};

/* Decodes a pid at *idx into *w (zeroed first): 0, or -1 if the term is not a pid. */
static int decode_who(struct sbx_node *node, const char *buf, int *idx, struct who *w) {
    memset(w, 0, sizeof *w);
    return sbx_node_decode_pid(node, buf, idx, &w->is_local, &w->num, &w->serial, &w->remote);
}

/* The live local process w names, or NULL (remote, gone, or from an older incarnation). */
static struct sbx_proc *local_proc(struct sbx_node *node, const struct who *w) {
    return w->is_local ? sbx_proc_find(&node->procs, w->num, w->serial) : NULL;
}

/* Sends {Op, Me, To, Reason-atom} (EXIT). */
static void send_exit_atom(struct sbx_node *node, const struct who *me, const struct sbx_rpid *to,
                           const char *reason) {
    ei_x_buff ctl;
    erlang_pid pid;
    ei_x_new_with_version(&ctl);
    ei_x_encode_tuple_header(&ctl, 4);
    ei_x_encode_long(&ctl, 3);
    memcpy(pid.node, node->name, strlen(node->name) + 1);
    pid.num = me->num;
    pid.serial = me->serial;
    pid.creation = node->creation;
    ei_x_encode_pid(&ctl, &pid);
    if (sbx_node_encode_rpid(node, &ctl, to) == 0) {
        ei_x_encode_atom(&ctl, reason);
        sbx_node_send(node, to->conn_id, &ctl, NULL);
    }
    ei_x_free(&ctl);
}

/* LINK: links a remote From to our To, or answers EXIT noproc
 * if To is gone. -1 if From is local or To remote. */
static int on_link(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx) {
    struct who from, to;
    if (decode_who(node, b, &idx, &from) != 0 || decode_who(node, b, &idx, &to) != 0 ||
        from.is_local || !to.is_local)
        return -1;
    if (from.remote.conn_id == 0)
        return 0; /* a process of a node we are not connected to: nothing to keep */
    struct sbx_proc *p = local_proc(node, &to);
    if (c->fenced && p != NULL) {
        fence_refuse(c, "link");
        p = NULL; /* a sandbox's node links to nothing here: as if To were gone */
    }
    if (p == NULL)
        send_exit_atom(node, &to, &from.remote, "noproc");
    else
        sbx_proc_link(p, &from.remote);
    return 0;
}

/* Hands the message term (with version byte) to p's message op; dropped
 * if p is NULL, has no handler, or the packet carries no message. */
static void deliver(struct sbx_node *node, struct sbx_proc *p, const struct sbx_rpid *from,
                    const struct sbx_dist_packet *pkt) {
    (void)node;
    if (p != NULL && pkt->msg != NULL && p->ops != NULL && p->ops->message != NULL)
        p->ops->message(p, from, pkt->msg, pkt->msg_len);
}

/* SEND and SEND_TT: delivers to a local pid; the sender is unknown. */
static int on_send(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx,
                   const struct sbx_dist_packet *pkt) {
    struct who to;
    if (ei_skip_term(b, &idx) != 0 || decode_who(node, b, &idx, &to) != 0)
        return -1;
    deliver(node, fence_filter(c, local_proc(node, &to), "send"), NULL, pkt);
    return 0;
}

/* SEND_SENDER(_TT): delivers to a local pid with the remote sender known. */
static int on_send_sender(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx,
                          const struct sbx_dist_packet *pkt) {
    struct who from, to;
    if (decode_who(node, b, &idx, &from) != 0 || decode_who(node, b, &idx, &to) != 0)
        return -1;
    deliver(node, fence_filter(c, local_proc(node, &to), "send"),
            from.is_local ? NULL : &from.remote, pkt);
    return 0;
}

/* REG_SEND(_TT): delivers to a registered name; a message to an unknown name is dropped. */
static int on_reg_send(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx,
                       const struct sbx_dist_packet *pkt) {
    struct who from;
    char name[MAXATOMLEN_UTF8];
    if (decode_who(node, b, &idx, &from) != 0 || ei_skip_term(b, &idx) != 0 ||
        sbx_decode_atom(b, &idx, name) != 0)
        return -1;
    if (c->fenced) {
        fence_refuse(c, "send to a registered name");
        return 0;
    }
    deliver(node, sbx_proc_whereis(&node->procs, name), from.is_local ? NULL : &from.remote, pkt);
    return 0;
}

/* EXIT/EXIT2 and their payload forms: reason is a raw term. */
static void exit_signal(struct sbx_node *node, const struct who *from, const struct who *to,
                        const char *reason, size_t reason_len, int is_link_exit) {
    struct sbx_proc *p = local_proc(node, to);
    if (p == NULL || from->is_local)
        return;
    if (is_link_exit && !sbx_proc_unlink(p, &from->remote))
        return; /* not linked: a stale signal */
    if (p->name != NULL || (p->ops != NULL && p->ops->traps_exits))
        return; /* system processes (and those that say so) trap exits */
    int idx = 0;
    char atom[MAXATOMLEN_UTF8];
    if (sbx_decode_atom(reason, &idx, atom) == 0 && strcmp(atom, "normal") == 0)
        return; /* exit(normal) does not kill a process that does not trap exits */
    sbx_node_proc_kill(node, p, reason, reason_len);
}

/* EXIT, EXIT2 and their _TT forms (has_token): the reason is in the control term. */
static int on_exit(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx,
                   int has_token, int is_link) {
    struct who from, to;
    const char *reason;
    size_t rlen;
    if (decode_who(node, b, &idx, &from) != 0 || decode_who(node, b, &idx, &to) != 0 ||
        (has_token && ei_skip_term(b, &idx) != 0) || sbx_term_span(b, &idx, &reason, &rlen) != 0)
        return -1;
    if (c->fenced) {
        fence_refuse(c, "exit signal");
        return 0;
    }
    exit_signal(node, &from, &to, reason, rlen, is_link);
    return 0;
}

/* PAYLOAD_EXIT(2)(_TT): the reason is the message term; -1 if there is none. */
static int on_payload_exit(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx,
                           const struct sbx_dist_packet *pkt, int is_link) {
    struct who from, to;
    if (decode_who(node, b, &idx, &from) != 0 || decode_who(node, b, &idx, &to) != 0 ||
        pkt->msg == NULL)
        return -1;
    if (c->fenced) {
        fence_refuse(c, "exit signal");
        return 0;
    }
    exit_signal(node, &from, &to, pkt->msg + 1, pkt->msg_len - 1, is_link);
    return 0;
}

/* UNLINK: removes the link from a remote process, if there is one. */
static int on_unlink(struct sbx_node *node, const char *b, int idx) {
    struct who from, to;
    if (decode_who(node, b, &idx, &from) != 0 || decode_who(node, b, &idx, &to) != 0)
        return -1;
    struct sbx_proc *p = local_proc(node, &to);
    if (p != NULL && !from.is_local)
        sbx_proc_unlink(p, &from.remote);
    return 0;
}

/* UNLINK_ID: removes the link and always answers UNLINK_ID_ACK over c. */
static int on_unlink_id(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx) {
    struct who from, to;
    const char *id;
    size_t idlen;
    if (sbx_term_span(b, &idx, &id, &idlen) != 0 || decode_who(node, b, &idx, &from) != 0 ||
        decode_who(node, b, &idx, &to) != 0 || from.is_local || !to.is_local)
        return -1;
    struct sbx_proc *p = local_proc(node, &to);
    if (p != NULL)
        sbx_proc_unlink(p, &from.remote);
    /* {36, Id, To(us), From} acknowledges, even for a process that is gone. */
    ei_x_buff ctl;
    erlang_pid me;
    ei_x_new_with_version(&ctl);
    ei_x_encode_tuple_header(&ctl, 4);
    ei_x_encode_long(&ctl, 36);
    ei_x_append_buf(&ctl, id, (int)idlen);
    memcpy(me.node, node->name, strlen(node->name) + 1);
    me.num = to.num;
    me.serial = to.serial;
    me.creation = node->creation;
    ei_x_encode_pid(&ctl, &me);
    if (sbx_node_encode_rpid(node, &ctl, &from.remote) == 0)
        sbx_node_send(node, c->id, &ctl, NULL);
    ei_x_free(&ctl);
    return 0;
}

/* MONITOR_P / DEMONITOR_P: the target is a pid or a registered name. */
static int on_monitor(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx,
                      int add) {
    struct who from, to;
    char name[MAXATOMLEN_UTF8];
    int type, size, by_name = 0;
    const char *ref, *target;
    size_t ref_len, target_len;
    struct sbx_proc *p = NULL;

    if (decode_who(node, b, &idx, &from) != 0 || from.is_local)
        return -1;
    if (from.remote.conn_id == 0)
        return 0; /* the watcher's node is not connected: its monitor could never fire */
    if (ei_get_type(b, &idx, &type, &size) != 0)
        return -1;
    int tidx = idx;
    if (sbx_term_span(b, &idx, &target, &target_len) != 0)
        return -1;
    if (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
        type == ERL_SMALL_ATOM_UTF8_EXT) {
        if (sbx_decode_atom(b, &tidx, name) != 0)
            return -1;
        p = sbx_proc_whereis(&node->procs, name);
        by_name = 1;
    } else {
        if (decode_who(node, b, &tidx, &to) != 0)
            return -1;
        p = local_proc(node, &to);
    }
    if (sbx_term_span(b, &idx, &ref, &ref_len) != 0)
        return -1;
    if (add && c->fenced && p != NULL && (by_name || !sbx_proc_serves(p, c->peer_name))) {
        fence_refuse(c, by_name ? "monitor of a registered name" : "monitor");
        p = NULL; /* answered noproc below */
    }
    if (!add) {
        if (p != NULL && sbx_proc_demonitor(p, &from.remote, ref, ref_len) && p->ops != NULL &&
            p->ops->demonitored != NULL)
            p->ops->demonitored(p);
        return 0;
    }
    if (p != NULL && sbx_proc_monitor(p, &from.remote, ref, ref_len, by_name) == 0)
        return 0;
    /* {21, PidOrName, Watcher, Ref, noproc} */
    ei_x_buff ctl;
    ei_x_new_with_version(&ctl);
    ei_x_encode_tuple_header(&ctl, 5);
    ei_x_encode_long(&ctl, 21);
    ei_x_append_buf(&ctl, target, (int)target_len);
    if (sbx_node_encode_rpid(node, &ctl, &from.remote) == 0) {
        ei_x_append_buf(&ctl, ref, ref_len);
        ei_x_encode_atom(&ctl, p == NULL ? "noproc" : "no_memory");
        sbx_node_send(node, from.remote.conn_id, &ctl, NULL);
    }
    ei_x_free(&ctl);
    return 0;
}

/* See control.h. */
void sbx_control_spawn_reply(struct sbx_node *node, const struct sbx_spawn_request *req,
                             int flags, const struct sbx_proc *p, const char *reason) {
    ei_x_buff ctl;
    ei_x_new_with_version(&ctl);
    ei_x_encode_tuple_header(&ctl, 5);
    ei_x_encode_long(&ctl, 31);
    ei_x_append_buf(&ctl, req->req_id, (int)req->req_id_len);
    if (sbx_node_encode_rpid(node, &ctl, &req->from) == 0) {
        ei_x_encode_long(&ctl, p != NULL ? flags : 0);
        if (p != NULL)
            sbx_node_encode_self_pid(node, &ctl, p);
        else
            ei_x_encode_atom(&ctl, reason);
        sbx_node_send(node, req->conn_id, &ctl, NULL);
    }
    ei_x_free(&ctl);
}

/* {29, ReqId, From, GroupLeader, {M,F,Arity}, Opts} (+ Token for 30) + Args */
static int on_spawn_request(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx,
                            const struct sbx_dist_packet *pkt) {
    struct sbx_spawn_request req;
    struct who from;
    int arity, n;

    memset(&req, 0, sizeof req);
    req.conn_id = c->id;
    if (sbx_term_span(b, &idx, &req.req_id, &req.req_id_len) != 0 ||
        decode_who(node, b, &idx, &from) != 0 || from.is_local || ei_skip_term(b, &idx) != 0 ||
        ei_decode_tuple_header(b, &idx, &arity) != 0 || arity != 3 ||
        sbx_decode_atom(b, &idx, req.module) != 0 || sbx_decode_atom(b, &idx, req.function) != 0 ||
        ei_decode_long(b, &idx, &req.arity) != 0)
        return -1;
    req.from = from.remote;
    /* Options: a proper list; only link and monitor matter here. */
    int type, size;
    if (ei_get_type(b, &idx, &type, &size) != 0)
        return -1;
    if (type == ERL_LIST_EXT) {
        if (ei_decode_list_header(b, &idx, &n) != 0)
            return -1;
        for (int i = 0; i < n; i++) {
            char opt[MAXATOMLEN_UTF8];
            int save = idx;
            if (sbx_decode_atom(b, &idx, opt) == 0) {
                req.link |= strcmp(opt, "link") == 0;
                req.monitor |= strcmp(opt, "monitor") == 0;
            } else {
                idx = save;
                if (ei_skip_term(b, &idx) != 0)
                    return -1;
            }
        }
        if (ei_skip_term(b, &idx) != 0) /* tail */
            return -1;
    } else if (ei_skip_term(b, &idx) != 0) {
        return -1;
    }
    if (pkt->msg == NULL)
        return -1;
    req.args = pkt->msg + 1;
    req.args_len = pkt->msg_len - 1;
    if (c->fenced) {
        fence_refuse(c, "spawn_request");
        sbx_control_spawn_reply(node, &req, 0, NULL, "notsup");
        return 0;
    }
    if (spawn_handler != NULL)
        spawn_handler(node, &req);
    return 0;
}

/* Hands {'DOWN', Ref, process, Target, Reason} to local process p; each part is an
 * encoded term (no version byte); reason_atom stands for Reason when reason is NULL. */
static void deliver_down(struct sbx_proc *p, const char *ref, size_t rlen, const char *target,
                         size_t tlen, const char *reason, size_t reason_len, const char *reason_atom) {
    if (p == NULL || p->ops == NULL || p->ops->message == NULL)
        return;
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 5);
    ei_x_encode_atom(&m, "DOWN");
    ei_x_append_buf(&m, ref, (int)rlen);
    ei_x_encode_atom(&m, "process");
    ei_x_append_buf(&m, target, (int)tlen);
    if (reason != NULL)
        ei_x_append_buf(&m, reason, (int)reason_len);
    else
        ei_x_encode_atom(&m, reason_atom);
    p->ops->message(p, NULL, m.buff, (size_t)m.index);
    ei_x_free(&m);
}

/* MONITOR_P_EXIT for a monitor one of our processes holds: {21,Target,Watcher,Ref,Reason}
 * is handed to the watcher as the message {'DOWN', Ref, process, Target, Reason}. */
static int on_monitor_exit(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx,
                           const struct sbx_dist_packet *pkt, int payload) {
    struct who watcher;
    const char *target, *ref, *reason;
    size_t tlen, rlen, reason_len;
    if (sbx_term_span(b, &idx, &target, &tlen) != 0 || decode_who(node, b, &idx, &watcher) != 0 ||
        sbx_term_span(b, &idx, &ref, &rlen) != 0)
        return -1;
    if (payload) {
        if (pkt->msg == NULL)
            return -1;
        reason = pkt->msg + 1;
        reason_len = pkt->msg_len - 1;
    } else if (sbx_term_span(b, &idx, &reason, &reason_len) != 0) {
        return -1;
    }
    deliver_down(fence_filter(c, local_proc(node, &watcher), "monitor exit"), ref, rlen, target,
                 tlen, reason, reason_len, NULL);
    return 0;
}

/* {31, ReqId, To, Flags, PidOrAtom}: only a refusal needs telling (the monitor's DOWN
 * answers an accepted request). */
static int on_spawn_reply(struct sbx_node *node, struct sbx_conn *c, const char *b, int idx) {
    struct who to;
    const char *req, *res;
    size_t req_len, res_len;
    int type, size;
    if (sbx_term_span(b, &idx, &req, &req_len) != 0 || decode_who(node, b, &idx, &to) != 0 ||
        ei_skip_term(b, &idx) != 0 || ei_get_type(b, &idx, &type, &size) != 0 ||
        sbx_term_span(b, &idx, &res, &res_len) != 0)
        return -1;
    if (type == ERL_PID_EXT || type == ERL_NEW_PID_EXT)
        return 0;
    deliver_down(fence_filter(c, local_proc(node, &to), "spawn reply"), req, req_len, res,
                 res_len, NULL, 0, "spawn_failed");
    return 0;
}

/* See control.h. Handlers run process ops re-entrantly (message, kill, the spawn
 * handler); they may send on c or start closing any connection, c included. */
int sbx_control_dispatch(struct sbx_node *node, struct sbx_conn *c,
                         const struct sbx_dist_packet *pkt) {
    const char *b = pkt->ctl;
    int idx = 0, version, arity;
    long op;

    if (ei_decode_version(b, &idx, &version) != 0 || ei_decode_tuple_header(b, &idx, &arity) != 0 ||
        arity < 1 || ei_decode_long(b, &idx, &op) != 0)
        return -1;
    switch (op) {
    case 1: return arity == 3 ? on_link(node, c, b, idx) : -1;
    case 2: return arity == 3 ? on_send(node, c, b, idx, pkt) : -1;
    case 3: return arity == 4 ? on_exit(node, c, b, idx, 0, 1) : -1;
    case 4: return arity == 3 ? on_unlink(node, b, idx) : -1;
    case 6: return arity == 4 ? on_reg_send(node, c, b, idx, pkt) : -1;
    case 8: return arity == 4 ? on_exit(node, c, b, idx, 0, 0) : -1;
    case 12: return arity == 4 ? on_send(node, c, b, idx, pkt) : -1;
    case 13: return arity == 5 ? on_exit(node, c, b, idx, 1, 1) : -1;
    case 16: return arity == 5 ? on_reg_send(node, c, b, idx, pkt) : -1;
    case 18: return arity == 5 ? on_exit(node, c, b, idx, 1, 0) : -1;
    case 19: return arity == 4 ? on_monitor(node, c, b, idx, 1) : -1;
    case 20: return arity == 4 ? on_monitor(node, c, b, idx, 0) : -1;
    case 21: return arity == 5 ? on_monitor_exit(node, c, b, idx, pkt, 0) : -1;
    case 22: return arity == 3 ? on_send_sender(node, c, b, idx, pkt) : -1;
    case 23: return arity == 4 ? on_send_sender(node, c, b, idx, pkt) : -1;
    case 24: case 25: return arity >= 3 ? on_payload_exit(node, c, b, idx, pkt, 1) : -1;
    case 26: case 27: return arity >= 3 ? on_payload_exit(node, c, b, idx, pkt, 0) : -1;
    case 28: return arity == 4 ? on_monitor_exit(node, c, b, idx, pkt, 1) : -1;
    case 29: return arity == 6 ? on_spawn_request(node, c, b, idx, pkt) : -1;
    case 30: return arity == 7 ? on_spawn_request(node, c, b, idx, pkt) : -1;
    case 31: return arity == 5 ? on_spawn_reply(node, c, b, idx) : -1;
    case 32: return arity == 6 ? on_spawn_reply(node, c, b, idx) : -1;
    case 35: return arity == 4 ? on_unlink_id(node, c, b, idx) : -1;
    default:
        SBX_DEBUG("ignored control message", "peer=%s op=%ld", c->peer_name, op);
        return 0;
    }
}
