/* erpc client calls to a named BEAM node: connect (with that node's cookie), spawn
 * erpc:execute_call with a monitor, wait for the monitor's DOWN or a timeout. */
#include "rpc/remote.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "dist/conn.h"
#include "dist/conn_flush.h"
#include "dist/control.h"
#include "dist/handshake.h"
#include "dist/node.h"
#include "rpc/rcall.h"

/* One pending call: owned by its process (p->data); freed with it. */
struct rcall_state {
    struct sbx_node *node;
    struct sbx_proc *proc;
    struct event *timer;
    sbx_remote_done_fn done;
    uint64_t key;
    char peer[SBX_NODE_NAME_MAX + 1];
    char m[MAXATOMLEN_UTF8], f[MAXATOMLEN_UTF8];
    char *args;
    size_t args_len;
    uint64_t conn_id; /* 0 until the request is sent */
    char *ref;        /* the request's reference once sent, encoded */
    size_t ref_len;
};

static void st_message(struct sbx_proc *p, const struct sbx_rpid *from, const char *msg,
                       size_t len);
static void st_kill(struct sbx_proc *p);
static void st_conn_down(struct sbx_proc *p, uint64_t conn_id);

/* The call's process traps exits: it is the remote process's group leader, so code in the
 * node can reach it with exit/2 or link/1, and a kill would drop the call without done
 * ever running (the caller's call, and the timer that would end it, gone with it). The
 * monitor's DOWN, the timeout or conn_down end the call instead. */
static const struct sbx_proc_ops remote_ops = {.message = st_message,
                                               .kill = st_kill,
                                               .conn_down = st_conn_down,
                                               .demonitored = NULL,
                                               .traps_exits = 1};

/* Frees the state and what it holds (timer, copies); not the process. */
static void st_free(struct rcall_state *st) {
    if (st->timer != NULL)
        event_free(st->timer);
    free(st->args);
    free(st->ref);
    free(st);
}

/* Kill op (node shutdown only: the process traps exits): the caller is not told; the
 * state goes. */
static void st_kill(struct sbx_proc *p) {
    st_free(p->data);
    p->data = NULL;
}

/* Ends the call: removes its process from the table first (so done may cancel or start
 * calls freely), then tells the caller, then frees the state. */
static void finish(struct rcall_state *st, const struct sbx_remote_result *res) {
    struct sbx_node *node = st->node;
    st->proc->data = NULL;
    sbx_proc_free(&node->procs, st->proc);
    st->proc = NULL;
    st->done(st->key, res);
    st_free(st);
}

/* Ends the call with a timeout or noconnection outcome. */
static void finish_simple(struct rcall_state *st, enum sbx_remote_kind kind, const char *why) {
    struct sbx_remote_result r = {.kind = kind, .why = why};
    finish(st, &r);
}

/* Timer: no answer in time. arg is the state, whose timer dies with it. */
static void st_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    finish_simple(arg, SBX_REMOTE_TIMEOUT, "no answer within the timeout");
}

/* conn_down op: the connection our request went through is gone. */
static void st_conn_down(struct sbx_proc *p, uint64_t conn_id) {
    struct rcall_state *st = p->data;
    if (st != NULL && st->conn_id != 0 && st->conn_id == conn_id)
        finish_simple(st, SBX_REMOTE_NOCONNECTION, "connection to the node went down");
}

/* Decodes the monitor's DOWN reason at msg+idx into an outcome and finishes. The reason is
 * {Ref, return, V} | {Ref, throw, V} | {Ref, exit, V} | {Ref, error, R, Stack} |
 * {Ref, error, {erpc, R}} from erpc:execute_call, or any other exit reason of the remote
 * process (noconnection, killed, ...), or spawn_failed with the refusal as target. */
static void st_outcome(struct rcall_state *st, const char *msg, int target_idx, int idx) {
    struct sbx_remote_result r = {.kind = SBX_REMOTE_EXCEPTION};
    char atom[MAXATOMLEN_UTF8], cls[MAXATOMLEN_UTF8];
    int arity, j = idx;
    const char *rref;
    size_t rref_len;

    if (ei_decode_atom(msg, &j, atom) == 0) {
        if (strcmp(atom, "spawn_failed") == 0) {
            r.cls = "erpc";
            j = target_idx;
        } else if (strcmp(atom, "noconnection") == 0) {
            finish_simple(st, SBX_REMOTE_NOCONNECTION, "connection to the node went down");
            return;
        } else {
            r.cls = "exit";
            j = idx;
        }
        if (sbx_term_span(msg, &j, &r.term, &r.term_len) != 0)
            goto other;
        finish(st, &r);
        return;
    }
    j = idx;
    if (ei_decode_tuple_header(msg, &j, &arity) != 0 || (arity != 3 && arity != 4) ||
        sbx_term_span(msg, &j, &rref, &rref_len) != 0 || sbx_decode_atom(msg, &j, cls) != 0)
        goto other;
    /* Res is the request reference too (sbx_rcall passes the same ref for both). */
    if (!sbx_ref_equal(rref, rref_len, st->ref, st->ref_len))
        goto other;
    if (sbx_term_span(msg, &j, &r.term, &r.term_len) != 0)
        goto other;
    if (arity == 3 && strcmp(cls, "return") == 0) {
        r.kind = SBX_REMOTE_VALUE;
    } else if (arity == 3 && (strcmp(cls, "throw") == 0 || strcmp(cls, "exit") == 0)) {
        r.cls = cls[0] == 't' ? "throw" : "exit";
    } else if (arity == 4 && strcmp(cls, "error") == 0) {
        r.cls = "error";
        if (sbx_term_span(msg, &j, &r.stack, &r.stack_len) != 0)
            goto other;
    } else if (arity == 3 && strcmp(cls, "error") == 0) {
        /* {erpc, R}: report R under class erpc. */
        int k = (int)(r.term - msg), a2;
        if (ei_decode_tuple_header(msg, &k, &a2) != 0 || a2 != 2 ||
            sbx_decode_atom(msg, &k, atom) != 0 || strcmp(atom, "erpc") != 0 ||
            sbx_term_span(msg, &k, &r.term, &r.term_len) != 0)
            goto other;
        r.cls = "erpc";
    } else {
        goto other;
    }
    finish(st, &r);
    return;
other:
    /* Any other exit reason of the remote process: as erpc, exit with that reason. */
    j = idx;
    r.kind = SBX_REMOTE_EXCEPTION;
    r.cls = "exit";
    r.stack = NULL;
    r.stack_len = 0;
    if (sbx_term_span(msg, &j, &r.term, &r.term_len) != 0)
        return; /* cannot happen on a validated message */
    finish(st, &r);
}

/* The call's process is the remote process's group leader (as the caller's is for
 * rpc:call): {io_request, From, ReplyAs, Req} gets {io_reply, ReplyAs, ok} for output
 * (discarded: the node's own output goes to its logs) and {error, enotsup} for input,
 * so that io:format in the called function returns instead of hanging. From must be on
 * the node called (the request's connection): code there must not make sandboxd send
 * io_reply messages to processes of other nodes. */
static void io_request(struct rcall_state *st, struct sbx_proc *p, const char *msg, int idx) {
    struct sbx_rpid to;
    int is_local, arity;
    uint32_t n, s;
    const char *reply_as, *req;
    size_t reply_as_len, req_len;
    char atom[MAXATOMLEN_UTF8];
    if (sbx_node_decode_pid(st->node, msg, &idx, &is_local, &n, &s, &to) != 0 || is_local ||
        to.conn_id != st->conn_id || sbx_term_span(msg, &idx, &reply_as, &reply_as_len) != 0 ||
        sbx_term_span(msg, &idx, &req, &req_len) != 0)
        return;
    int k = 0, output = 0;
    if (ei_decode_tuple_header(req, &k, &arity) == 0 && arity >= 2 &&
        sbx_decode_atom(req, &k, atom) == 0)
        output = strcmp(atom, "put_chars") == 0 || strcmp(atom, "setopts") == 0;
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 3);
    ei_x_encode_atom(&m, "io_reply");
    ei_x_append_buf(&m, reply_as, (int)reply_as_len);
    if (output) {
        ei_x_encode_atom(&m, "ok");
    } else {
        ei_x_encode_tuple_header(&m, 2);
        ei_x_encode_atom(&m, "error");
        ei_x_encode_atom(&m, "enotsup");
    }
    sbx_node_send_msg(st->node, p, &to, NULL, 0, &m);
    ei_x_free(&m);
}

/* Message op: {'DOWN', OurRef, process, Target, Reason} ends the call; io requests are
 * answered; the rest is dropped. */
static void st_message(struct sbx_proc *p, const struct sbx_rpid *from, const char *msg,
                       size_t len) {
    struct rcall_state *st = p->data;
    int idx = 0, version, arity, target_idx;
    char atom[MAXATOMLEN_UTF8];
    const char *ref;
    size_t ref_len;
    (void)from;
    (void)len;
    if (st == NULL || st->ref == NULL || ei_decode_version(msg, &idx, &version) != 0 ||
        ei_decode_tuple_header(msg, &idx, &arity) != 0 || sbx_decode_atom(msg, &idx, atom) != 0)
        return;
    if (arity == 4 && strcmp(atom, "io_request") == 0) {
        io_request(st, p, msg, idx);
        return;
    }
    if (arity != 5 || strcmp(atom, "DOWN") != 0 ||
        sbx_term_span(msg, &idx, &ref, &ref_len) != 0 ||
        !sbx_ref_equal(ref, ref_len, st->ref, st->ref_len) || ei_skip_term(msg, &idx) != 0)
        return;
    target_idx = idx;
    if (ei_skip_term(msg, &idx) != 0)
        return;
    st_outcome(st, msg, target_idx, idx);
}

/* Sends the request through connection conn_id and remembers its reference. 0, or -1
 * (not connected, no memory) with st unchanged. */
static int send_request(struct rcall_state *st, uint64_t conn_id) {
    ei_x_buff ref;
    int rc = -1;
    ei_x_new(&ref);
    if (sbx_rcall(st->node, st->proc, conn_id, st->m, st->f, st->args, st->args_len, &ref) != 0)
        goto done;
    st->conn_id = conn_id;
    st->ref = malloc((size_t)ref.index);
    if (st->ref != NULL) { /* else the answer cannot be matched: the timeout ends the call */
        memcpy(st->ref, ref.buff, (size_t)ref.index);
        st->ref_len = (size_t)ref.index;
    }
    free(st->args); /* sent: not needed any more */
    st->args = NULL;
    rc = 0;
done:
    ei_x_free(&ref);
    return rc;
}

/* Connect callback (key: the call's process): sends the request, or ends the call with
 * noconnection. A call cancelled meanwhile is not found and nothing happens. */
static void st_connected(struct sbx_node *node, uint64_t conn_id, const char *why, uint64_t key) {
    struct sbx_proc *p = sbx_proc_find(&node->procs, (uint32_t)(key >> 32), (uint32_t)key);
    struct rcall_state *st;
    (void)why;
    if (p == NULL || p->ops != &remote_ops || p->data == NULL)
        return;
    st = p->data;
    if (st->conn_id != 0)
        return; /* sent already */
    if (conn_id == 0) {
        finish_simple(st, SBX_REMOTE_NOCONNECTION, "cannot connect to the node");
        return;
    }
    if (send_request(st, conn_id) != 0)
        finish_simple(st, SBX_REMOTE_NOCONNECTION, "cannot send the request");
}

/* See remote.h. On failure nothing is left (no process, no timer); the peer cookie may
 * stay registered (harmless: it is the target's). */
int sbx_remote_call(struct sbx_node *node, const struct sbx_beam_target *t, const char *m,
                    const char *f, const char *args, size_t args_len, int timeout_ms,
                    sbx_remote_done_fn done, uint64_t key) {
    struct rcall_state *st = NULL;
    size_t mlen = strlen(m), flen = strlen(f);

    if (mlen == 0 || mlen >= MAXATOMLEN_UTF8 || flen == 0 || flen >= MAXATOMLEN_UTF8 ||
        args_len == 0 || done == NULL)
        return -1;
    if (sbx_node_set_peer_cookie(node, t->node, t->cookie) != 0)
        return -1;
    st = calloc(1, sizeof *st);
    if (st == NULL)
        goto err;
    st->node = node;
    st->done = done;
    st->key = key;
    snprintf(st->peer, sizeof st->peer, "%s", t->node);
    memcpy(st->m, m, mlen + 1);
    memcpy(st->f, f, flen + 1);
    st->args = malloc(args_len);
    st->timer = evtimer_new(node->base, st_timeout, st);
    if (st->args == NULL || st->timer == NULL)
        goto err;
    memcpy(st->args, args, args_len);
    st->args_len = args_len;
    if (timeout_ms <= 0)
        timeout_ms = 5000;
    if (timeout_ms > SBX_REMOTE_TIMEOUT_MAX_MS)
        timeout_ms = SBX_REMOTE_TIMEOUT_MAX_MS;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    if (evtimer_add(st->timer, &tv) != 0)
        goto err;
    st->proc = sbx_proc_spawn(&node->procs, &remote_ops, st);
    if (st->proc == NULL)
        goto err;
    /* The node is fenced (its own cookie): let it answer this call, and only this one. */
    if (sbx_proc_serve_peer(st->proc, t->node) != 0) {
        sbx_proc_free(&node->procs, st->proc);
        goto err;
    }
    uint64_t pkey = ((uint64_t)st->proc->num << 32) | st->proc->serial;
    /* Connected already: send now rather than from the next loop turn (the answer still
     * reaches done only from the loop). If that fails, the connect path below reports it. */
    struct sbx_conn *up = sbx_node_conn_by_name(node, t->node);
    if (up != NULL && send_request(st, up->id) == 0) {
        /* The request first, before the caller's SPAWN_REPLY queued in this turn. */
        sbx_conn_flush_now(up);
        return 0;
    }
    if (sbx_conn_connect(node, t->node, st_connected, pkey) != 0) {
        sbx_proc_free(&node->procs, st->proc);
        goto err;
    }
    return 0;
err:
    if (st != NULL)
        st_free(st);
    return -1;
}

struct cancel_ctx {
    struct sbx_node *node;
    sbx_remote_done_fn done;
    uint64_t key;
    size_t n;
};

/* sbx_proc_each visitor: frees the matching calls' processes and states. */
static void cancel_one(struct sbx_proc *p, void *arg) {
    struct cancel_ctx *ctx = arg;
    struct rcall_state *st = p->data;
    if (p->ops != &remote_ops || st == NULL || st->done != ctx->done || st->key != ctx->key)
        return;
    p->data = NULL;
    st_free(st);
    sbx_proc_free(&ctx->node->procs, p);
    ctx->n++;
}

/* See remote.h. A connect still under way later finds no process and does nothing; a
 * late DOWN is addressed to a pid that no longer exists and is dropped. */
size_t sbx_remote_cancel(struct sbx_node *node, sbx_remote_done_fn done, uint64_t key) {
    struct cancel_ctx ctx = {node, done, key, 0};
    sbx_proc_each(&node->procs, cancel_one, &ctx);
    return ctx.n;
}

/* See remote.h. */
uint64_t sbx_remote_conn_id(const struct sbx_node *node, const char *node_name) {
    struct sbx_conn *c = sbx_node_conn_by_name(node, node_name);
    return c != NULL ? c->id : 0;
}

/* Appends {badrpc, {'EXIT', term}} (with {term, stack} when stack is set). */
static void encode_badrpc_exit(ei_x_buff *x, const struct sbx_remote_result *res) {
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "badrpc");
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "EXIT");
    if (res->stack != NULL)
        ei_x_encode_tuple_header(x, 2);
    ei_x_append_buf(x, res->term, (int)res->term_len);
    if (res->stack != NULL)
        ei_x_append_buf(x, res->stack, (int)res->stack_len);
}

/* Appends {badrpc, Atom}. */
static void encode_badrpc_atom(ei_x_buff *x, const char *atom) {
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "badrpc");
    ei_x_encode_atom(x, atom);
}

/* 1 if the encoded term is a 2-tuple whose first element is the atom 'EXIT'. */
static int is_exit_tuple(const char *term) {
    int idx = 0, arity;
    char atom[MAXATOMLEN_UTF8];
    return ei_decode_tuple_header(term, &idx, &arity) == 0 && arity == 2 &&
           ei_decode_atom(term, &idx, atom) == 0 && strcmp(atom, "EXIT") == 0;
}

/* See remote.h. res->term and res->stack are read, not kept. */
void sbx_remote_encode_rpc_result(ei_x_buff *x, const struct sbx_remote_result *res) {
    char atom[MAXATOMLEN_UTF8];
    int idx = 0;
    switch (res->kind) {
    case SBX_REMOTE_VALUE: ei_x_append_buf(x, res->term, (int)res->term_len); return;
    case SBX_REMOTE_TIMEOUT: encode_badrpc_atom(x, "timeout"); return;
    case SBX_REMOTE_NOCONNECTION: encode_badrpc_atom(x, "nodedown"); return;
    case SBX_REMOTE_EXCEPTION: break;
    }
    if (strcmp(res->cls, "throw") == 0) {
        if (is_exit_tuple(res->term)) {
            ei_x_encode_tuple_header(x, 2);
            ei_x_encode_atom(x, "badrpc");
        }
        ei_x_append_buf(x, res->term, (int)res->term_len);
    } else if (strcmp(res->cls, "erpc") == 0 && ei_decode_atom(res->term, &idx, atom) == 0 &&
               (strcmp(atom, "noconnection") == 0 || strcmp(atom, "notsup") == 0)) {
        encode_badrpc_atom(x, atom[0] == 'n' && atom[1] == 'o' && atom[2] == 'c' ? "nodedown" : "notsup");
    } else {
        encode_badrpc_exit(x, res);
    }
}
