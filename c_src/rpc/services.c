/* Registered system processes and spawn requests.
 *
 * gen_server calls arrive as {'$gen_call', {Pid, Tag}, Request}; Tag is a reference or,
 * from OTP 24 on, the improper list [alias | Ref], answered through ALIAS_SEND so that a
 * late answer is dropped by the caller's runtime. */
#include "rpc/services.h"

#include <stdlib.h>
#include <string.h>

#include "dist/control.h"
#include "dist/node.h"
#include "rpc/call.h"
#include "util/log.h"

/* The pieces of {'$gen_call', {Pid, Tag}, Request} (or a bare {Pid, Request} for rex's
 * legacy form). Pointers are into the message. */
struct gen_call {
    struct sbx_rpid from;
    const char *tag;
    size_t tag_len;
    const char *alias; /* the Ref of [alias|Ref], or NULL */
    size_t alias_len;
    const char *request;
    int request_idx;
};

/* Parses {Pid, Tag} at *idx. */
static int parse_from(struct sbx_node *node, const char *b, int *idx, struct gen_call *g) {
    int arity, is_local, type, size;
    uint32_t num, serial;
    if (ei_decode_tuple_header(b, idx, &arity) != 0 || arity != 2 ||
        sbx_node_decode_pid(node, b, idx, &is_local, &num, &serial, &g->from) != 0 || is_local)
        return -1;
    int tag_idx = *idx;
    if (sbx_term_span(b, idx, &g->tag, &g->tag_len) != 0)
        return -1;
    g->alias = NULL;
    if (ei_get_type(b, &tag_idx, &type, &size) == 0 && type == ERL_LIST_EXT && size == 1) {
        char atom[MAXATOMLEN_UTF8];
        int n;
        ei_decode_list_header(b, &tag_idx, &n);
        if (sbx_decode_atom(b, &tag_idx, atom) == 0 && strcmp(atom, "alias") == 0 &&
            sbx_term_span(b, &tag_idx, &g->alias, &g->alias_len) != 0)
            return -1;
    }
    return 0;
}

/* Parses {'$gen_call', {Pid, Tag}, Request}; 0 if msg has that shape. */
static int parse_gen_call(struct sbx_node *node, const char *msg, struct gen_call *g) {
    int idx = 0, version, arity;
    char atom[MAXATOMLEN_UTF8];
    if (ei_decode_version(msg, &idx, &version) != 0 ||
        ei_decode_tuple_header(msg, &idx, &arity) != 0 || arity != 3 ||
        sbx_decode_atom(msg, &idx, atom) != 0 || strcmp(atom, "$gen_call") != 0 ||
        parse_from(node, msg, &idx, g) != 0)
        return -1;
    g->request = msg;
    g->request_idx = idx;
    return 0;
}

/* A call answering g's caller from replier; g's tag and alias
 * are copied. NULL when out of memory. */
static struct sbx_call *new_call(struct sbx_node *node, struct sbx_proc *replier,
                                 const struct gen_call *g, enum sbx_call_kind kind) {
    struct sbx_call_spec spec = {.kind = kind,
                                 .conn_id = g->from.conn_id,
                                 .caller = g->from,
                                 .replier = replier,
                                 .tag = g->tag,
                                 .tag_len = g->tag_len,
                                 .alias = g->alias,
                                 .alias_len = g->alias_len};
    return sbx_call_new(node, &spec);
}

/* Sends {Tag, Value-atom} from p. */
static void reply_atom(struct sbx_node *node, struct sbx_proc *p, const struct gen_call *g,
                       const char *value) {
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 2);
    ei_x_append_buf(&m, g->tag, (int)g->tag_len);
    ei_x_encode_atom(&m, value);
    sbx_node_send_msg(node, p, &g->from, g->alias, g->alias_len, &m);
    ei_x_free(&m);
}

/* net_kernel: {is_auth, Node} -> yes (the connection is authenticated already).
 * Other requests answer `error` rather than leaving a caller hanging. */
static void net_kernel_message(struct sbx_proc *p, const struct sbx_rpid *from, const char *msg,
                               size_t len) {
    struct sbx_node *node = p->data;
    struct gen_call g;
    int arity;
    char atom[MAXATOMLEN_UTF8];
    (void)from;
    (void)len;
    if (parse_gen_call(node, msg, &g) != 0)
        return;
    int idx = g.request_idx;
    int is_auth = ei_decode_tuple_header(msg, &idx, &arity) == 0 && arity == 2 &&
                  sbx_decode_atom(msg, &idx, atom) == 0 && strcmp(atom, "is_auth") == 0;
    reply_atom(node, p, &g, is_auth ? "yes" : "error");
}

/* Decodes {Op, M, F, A, GL} or {cast, M, F, A}: op, module, function and A's span. */
static int parse_mfa_request(const char *b, int idx, char *op, char *m, char *f,
                             const char **args, size_t *args_len) {
    int arity;
    if (ei_decode_tuple_header(b, &idx, &arity) != 0 || arity < 4 ||
        sbx_decode_atom(b, &idx, op) != 0 || sbx_decode_atom(b, &idx, m) != 0 ||
        sbx_decode_atom(b, &idx, f) != 0 || sbx_term_span(b, &idx, args, args_len) != 0)
        return -1;
    return 0;
}

/* rex: {'$gen_call', From, {call|block_call, M, F, A, GL}}, or erl_call's legacy
 * {Pid, {call, M, F, A, GL}}, runs M:F(A) as a call. Another gen request is answered
 * error, a bad legacy one dropped; out of memory drops the request unanswered. */
static void rex_message(struct sbx_proc *p, const struct sbx_rpid *from, const char *msg,
                        size_t len) {
    struct sbx_node *node = p->data;
    struct gen_call g;
    char op[MAXATOMLEN_UTF8], m[MAXATOMLEN_UTF8], f[MAXATOMLEN_UTF8];
    const char *args;
    size_t args_len;
    enum sbx_call_kind kind = SBX_CALL_REX;
    (void)from;
    (void)len;

    if (parse_gen_call(node, msg, &g) != 0) {
        /* erl_call's legacy form: {Pid, {call, M, F, A, GL}} answered with {rex, V}. */
        int idx = 0, version, arity, is_local;
        uint32_t num, serial;
        if (ei_decode_version(msg, &idx, &version) != 0 ||
            ei_decode_tuple_header(msg, &idx, &arity) != 0 || arity != 2 ||
            sbx_node_decode_pid(node, msg, &idx, &is_local, &num, &serial, &g.from) != 0 ||
            is_local)
            return;
        g.tag = NULL;
        g.tag_len = 0;
        g.alias = NULL;
        g.alias_len = 0;
        g.request = msg;
        g.request_idx = idx;
        kind = SBX_CALL_REX_LEGACY;
    }
    if (parse_mfa_request(msg, g.request_idx, op, m, f, &args, &args_len) != 0 ||
        (strcmp(op, "call") != 0 && strcmp(op, "block_call") != 0)) {
        if (kind == SBX_CALL_REX)
            reply_atom(node, p, &g, "error");
        return;
    }
    struct sbx_call *call = new_call(node, p, &g, kind);
    if (call != NULL)
        sbx_call_run(call, m, f, args, args_len);
}

/* sandboxd: Request {F, A1, ...} (or the atom F) means sandbox:F(A1, ...). */
static void sandboxd_message(struct sbx_proc *p, const struct sbx_rpid *from, const char *msg,
                             size_t len) {
    struct sbx_node *node = p->data;
    struct gen_call g;
    char f[MAXATOMLEN_UTF8];
    int arity, type, size;
    (void)from;
    (void)len;
    if (parse_gen_call(node, msg, &g) != 0)
        return;
    struct sbx_call *call = new_call(node, p, &g, SBX_CALL_GEN);
    if (call == NULL)
        return;
    int idx = g.request_idx;
    ei_x_buff args;
    ei_x_new(&args);
    ei_get_type(msg, &idx, &type, &size);
    if (type == ERL_SMALL_TUPLE_EXT || type == ERL_LARGE_TUPLE_EXT) {
        ei_decode_tuple_header(msg, &idx, &arity);
        if (arity < 1 || sbx_decode_atom(msg, &idx, f) != 0) {
            snprintf(f, sizeof f, "%s", "");
            arity = 1;
        }
        if (arity > 1)
            ei_x_encode_list_header(&args, arity - 1);
        for (int i = 1; i < arity; i++) {
            const char *s;
            size_t n;
            sbx_term_span(msg, &idx, &s, &n);
            ei_x_append_buf(&args, s, (int)n);
        }
        ei_x_encode_empty_list(&args);
    } else {
        if (sbx_decode_atom(msg, &idx, f) != 0)
            snprintf(f, sizeof f, "%s", "");
        ei_x_encode_empty_list(&args);
    }
    sbx_call_run(call, "sandbox", f, args.buff, (size_t)args.index);
    ei_x_free(&args);
}

static const struct sbx_proc_ops net_kernel_ops = {.message = net_kernel_message};
static const struct sbx_proc_ops rex_ops = {.message = rex_message};
static const struct sbx_proc_ops sandboxd_ops = {.message = sandboxd_message};

/* Ends a call whose arguments are unusable with exit reason badarg. */
static void fail_badarg(struct sbx_call *call) {
    ei_x_buff r;
    ei_x_new(&r);
    ei_x_encode_atom(&r, "badarg");
    sbx_call_fail(call, r.buff, (size_t)r.index);
    ei_x_free(&r);
}

/* erpc:execute_call(Res, M, F, A) arrives as the argument list [Res, M, F, A]. */
static void run_erpc(struct sbx_call *call, const char *args) {
    int idx = 0, n;
    char m[MAXATOMLEN_UTF8], f[MAXATOMLEN_UTF8];
    const char *res, *a;
    size_t res_len, a_len;
    if (ei_decode_list_header(args, &idx, &n) != 0 || n != 4 ||
        sbx_term_span(args, &idx, &res, &res_len) != 0 ||
        (call->tag = malloc(res_len)) == NULL) {
        call->kind = SBX_CALL_SPAWN; /* no Res to answer with: a plain exit */
        fail_badarg(call);
        return;
    }
    memcpy(call->tag, res, res_len);
    call->tag_len = res_len;
    if (sbx_decode_atom(args, &idx, m) != 0 || sbx_decode_atom(args, &idx, f) != 0 ||
        sbx_term_span(args, &idx, &a, &a_len) != 0) {
        fail_badarg(call);
        return;
    }
    sbx_call_run(call, m, f, a, a_len);
}

/* erpc:execute_cast(M, F, A): [M, F, A]. */
static void run_cast(struct sbx_call *call, const char *args) {
    int idx = 0, n;
    char m[MAXATOMLEN_UTF8], f[MAXATOMLEN_UTF8];
    const char *a;
    size_t a_len;
    if (ei_decode_list_header(args, &idx, &n) != 0 || n != 3 ||
        sbx_decode_atom(args, &idx, m) != 0 || sbx_decode_atom(args, &idx, f) != 0 ||
        sbx_term_span(args, &idx, &a, &a_len) != 0) {
        sbx_call_done(call);
        return;
    }
    sbx_call_run(call, m, f, a, a_len);
}

/* The spawn handler: the request becomes a call whose process is linked
 * and monitored as asked. SPAWN_REPLY goes out before the call runs
 * (system_limit when out of memory); req is used only during this call. */
static void on_spawn(struct sbx_node *node, const struct sbx_spawn_request *req) {
    enum sbx_call_kind kind = SBX_CALL_SPAWN;
    int flags = 0;
    if (strcmp(req->module, "erpc") == 0 && strcmp(req->function, "execute_call") == 0 &&
        req->arity == 4)
        kind = SBX_CALL_ERPC;
    else if (strcmp(req->module, "erpc") == 0 && strcmp(req->function, "execute_cast") == 0 &&
             req->arity == 3)
        kind = SBX_CALL_CAST;
    struct sbx_call_spec spec = {.kind = kind, .conn_id = req->conn_id, .caller = req->from};
    struct sbx_call *call = sbx_call_new(node, &spec);
    if (call == NULL) {
        sbx_control_spawn_reply(node, req, 0, NULL, "system_limit");
        return;
    }
    if (req->link && sbx_proc_link(call->proc, &req->from) == 0)
        flags |= 1;
    if (req->monitor &&
        sbx_proc_monitor(call->proc, &req->from, req->req_id, req->req_id_len, 0) == 0)
        flags |= 2;
    sbx_control_spawn_reply(node, req, flags, call->proc, "system_limit");
    switch (kind) {
    case SBX_CALL_ERPC: run_erpc(call, req->args); break;
    case SBX_CALL_CAST: run_cast(call, req->args); break;
    default: sbx_call_run(call, req->module, req->function, req->args, req->args_len); break;
    }
}

/* Spawns a process registered under name (a static string, not
 * copied) with node as its data; -1 when out of memory. */
static int register_proc(struct sbx_node *node, const char *name, const struct sbx_proc_ops *ops) {
    struct sbx_proc *p = sbx_proc_spawn(&node->procs, ops, node);
    if (p == NULL)
        return -1;
    p->name = name;
    return 0;
}

/* See services.h. Contrary to the header, processes registered before an allocation
 * failure stay registered. Call once: a second call registers duplicates. */
int sbx_services_start(struct sbx_node *node) {
    if (register_proc(node, "net_kernel", &net_kernel_ops) != 0 ||
        register_proc(node, "rex", &rex_ops) != 0 ||
        register_proc(node, "sandboxd", &sandboxd_ops) != 0)
        return -1;
    sbx_control_set_spawn_handler(on_spawn);
    return 0;
}
