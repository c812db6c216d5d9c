/* Calls: argument unpacking, dispatch to the API table, and the answer in the form
 * each kind of caller expects. */
#include "rpc/call.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "core/stats.h"
#include "dist/control.h"
#include "dist/node.h"
#include "util/log.h"

#define MAX_ARGS 255

/* Monotonic nanoseconds, for call latency. */
static int64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Counts the call's outcome in core/stats once. */
static void count_call(struct sbx_call *call, enum sbx_rpc_result result) {
    if (call->counted || call->started_ns == 0)
        return;
    call->counted = 1;
    sbx_stats_rpc(call->fn_name, result, mono_ns() - call->started_ns);
}

/* OK or ERROR: whether the value is {error, _}. */
static enum sbx_rpc_result value_result(const ei_x_buff *v) {
    int idx = 0, arity;
    char atom[MAXATOMLEN];
    if (ei_decode_tuple_header(v->buff, &idx, &arity) == 0 && arity == 2 &&
        ei_decode_atom(v->buff, &idx, atom) == 0 && strcmp(atom, "error") == 0)
        return SBX_RPC_ERROR;
    return SBX_RPC_OK;
}

/* Frees the call and the copies it holds; leaves its process and call->state
 * alone (state is released by the API's cancel or on completion). */
static void call_free(struct sbx_call *call) {
    free(call->tag);
    free(call->alias);
    free(call->argv);
    ei_x_free(&call->args);
    ei_x_free(&call->result);
    free(call);
}

/* Process kill op: a pending call's cancel releases its work (it must
 * not reply), then the call is freed; the caller ends and frees p. */
static void call_kill(struct sbx_proc *p) {
    struct sbx_call *call = p->data;
    if (call->pending && call->cancel != NULL)
        call->cancel(call);
    count_call(call, SBX_RPC_CANCELLED);
    call_free(call);
    p->data = NULL;
}

/* Process conn_down op: if the caller's connection went down, the call
 * is killed with noconnection (cancel runs, call and process are freed). */
static void call_conn_down(struct sbx_proc *p, uint64_t conn_id) {
    struct sbx_call *call = p->data;
    if (call->conn_id == conn_id) {
        ei_x_buff r;
        ei_x_new(&r);
        ei_x_encode_atom(&r, "noconnection");
        sbx_node_proc_kill(call->node, p, r.buff, (size_t)r.index);
        ei_x_free(&r);
    }
}

/* An erpc caller that gave up (timeout) demonitors: nobody can see the answer any more,
 * so the work is cancelled rather than finished for no one. */
static void call_demonitored(struct sbx_proc *p) {
    struct sbx_call *call = p->data;
    if (call->pending && call->kind == SBX_CALL_ERPC && p->monitors == NULL && p->links == NULL) {
        ei_x_buff r;
        ei_x_new(&r);
        ei_x_encode_atom(&r, "kill");
        sbx_node_proc_kill(call->node, p, r.buff, (size_t)r.index);
        ei_x_free(&r);
    }
}

/* Process message op: passes msg to the API function's
 * on_message, if it set one; the sender is ignored. */
static void call_message(struct sbx_proc *p, const struct sbx_rpid *from, const char *msg,
                         size_t len) {
    struct sbx_call *call = p->data;
    (void)from;
    if (call->on_message != NULL)
        call->on_message(call, msg, len);
}

static const struct sbx_proc_ops call_ops = {
    .message = call_message,
    .kill = call_kill,
    .conn_down = call_conn_down,
    .demonitored = call_demonitored};

/* A malloc'ed copy of src[0..len) (1 byte allocated when len
 * is 0); the caller frees it. NULL when out of memory. */
static char *dup_bytes(const char *src, size_t len) {
    char *d = malloc(len > 0 ? len : 1);
    if (d != NULL && len > 0)
        memcpy(d, src, len);
    return d;
}

/* See call.h. spec's tag and alias are copied; nothing stays allocated when NULL is returned. */
struct sbx_call *sbx_call_new(struct sbx_node *node, const struct sbx_call_spec *spec) {
    struct sbx_call *call = calloc(1, sizeof *call);
    if (call == NULL)
        return NULL;
    ei_x_new(&call->args);
    ei_x_new(&call->result);
    call->node = node;
    call->kind = spec->kind;
    call->conn_id = spec->conn_id;
    call->caller = spec->caller;
    if (spec->replier != NULL) {
        call->replier_num = spec->replier->num;
        call->replier_serial = spec->replier->serial;
    }
    if (spec->tag != NULL && (call->tag = dup_bytes(spec->tag, spec->tag_len)) == NULL)
        goto err;
    call->tag_len = spec->tag_len;
    if (spec->alias != NULL && (call->alias = dup_bytes(spec->alias, spec->alias_len)) == NULL)
        goto err;
    call->alias_len = spec->alias_len;
    call->proc = sbx_proc_spawn(&node->procs, &call_ops, call);
    if (call->proc == NULL)
        goto err;
    return call;
err:
    call_free(call);
    return NULL;
}

/* Copies the elements of a proper list (LIST_EXT, STRING_EXT or NIL) into call->args.
 * Returns the count, or -1 if args is not a proper list or is too long. */
static int unpack_args(struct sbx_call *call, const char *args) {
    int idx = 0, type, size, n;
    if (ei_get_type(args, &idx, &type, &size) != 0 || size > MAX_ARGS)
        return -1;
    call->argv = calloc((size_t)(size > 0 ? size : 1), sizeof *call->argv);
    if (call->argv == NULL)
        return -1;
    if (type == ERL_NIL_EXT)
        return 0;
    if (type == ERL_STRING_EXT) {
        const unsigned char *s = (const unsigned char *)args + 3;
        for (int i = 0; i < size; i++) {
            call->argv[i] = call->args.index;
            ei_x_encode_long(&call->args, s[i]);
        }
        return size;
    }
    if (type != ERL_LIST_EXT || ei_decode_list_header(args, &idx, &n) != 0)
        return -1;
    for (int i = 0; i < n; i++) {
        const char *start;
        size_t len;
        if (sbx_term_span(args, &idx, &start, &len) != 0)
            return -1;
        call->argv[i] = call->args.index;
        ei_x_append_buf(&call->args, start, (int)len);
    }
    if (ei_get_type(args, &idx, &type, &size) != 0 || type != ERL_NIL_EXT)
        return -1; /* improper list */
    return n;
}

/* Encodes [{M, F, Args, []}], the stack of an undef. */
static void encode_undef_stack(ei_x_buff *x, const char *m, const char *f, const char *args,
                               size_t args_len) {
    ei_x_encode_list_header(x, 1);
    ei_x_encode_tuple_header(x, 4);
    ei_x_encode_atom(x, m);
    ei_x_encode_atom(x, f);
    ei_x_append_buf(x, args, (int)args_len);
    ei_x_encode_empty_list(x);
    ei_x_encode_empty_list(x);
}

/* Ends the call's process with reason r and frees the call. */
static void finish(struct sbx_call *call, const ei_x_buff *r) {
    struct sbx_proc *p = call->proc;
    p->data = NULL;
    sbx_node_proc_exit(call->node, p, r->buff, (size_t)r->index);
    call_free(call);
}

/* Ends the call's process with reason normal and frees the call. */
static void finish_normal(struct sbx_call *call) {
    ei_x_buff r;
    ei_x_new(&r);
    ei_x_encode_atom(&r, "normal");
    finish(call, &r);
    ei_x_free(&r);
}

/* Sends {Tag, Value} (GEN/REX) or {rex, Value} (REX_LEGACY) to the caller. */
static void reply(struct sbx_call *call, const char *value, size_t value_len) {
    ei_x_buff msg;
    struct sbx_proc *replier = call->kind == SBX_CALL_REX_LEGACY
                                   ? call->proc
                                   : sbx_proc_find(&call->node->procs, call->replier_num,
                                                   call->replier_serial);
    if (replier == NULL)
        replier = call->proc;
    ei_x_new_with_version(&msg);
    ei_x_encode_tuple_header(&msg, 2);
    if (call->kind == SBX_CALL_REX_LEGACY)
        ei_x_encode_atom(&msg, "rex");
    else
        ei_x_append_buf(&msg, call->tag, (int)call->tag_len);
    ei_x_append_buf(&msg, value, (int)value_len);
    sbx_node_send_msg(call->node, replier, &call->caller, call->alias, call->alias_len, &msg);
    ei_x_free(&msg);
}

/* See call.h. call is invalid on return; an answer to a caller
 * that is no longer connected is dropped. */
void sbx_call_done(struct sbx_call *call) {
    ei_x_buff r;
    call->pending = 0;
    count_call(call, value_result(&call->result));
    switch (call->kind) {
    case SBX_CALL_ERPC:
        ei_x_new(&r);
        ei_x_encode_tuple_header(&r, 3);
        ei_x_append_buf(&r, call->tag, (int)call->tag_len);
        ei_x_encode_atom(&r, "return");
        ei_x_append_buf(&r, call->result.buff, call->result.index);
        finish(call, &r);
        ei_x_free(&r);
        return;
    case SBX_CALL_GEN:
    case SBX_CALL_REX:
    case SBX_CALL_REX_LEGACY:
        reply(call, call->result.buff, (size_t)call->result.index);
        break;
    case SBX_CALL_CAST:
    case SBX_CALL_SPAWN:
        break;
    }
    finish_normal(call);
}

/* See call.h. reason stays the caller's; call is invalid on return.
 * A cast just exits normal; a spawn exits with reason itself. */
void sbx_call_fail(struct sbx_call *call, const char *reason, size_t reason_len) {
    ei_x_buff r;
    ei_x_new(&r);
    call->pending = 0;
    count_call(call, SBX_RPC_EXCEPTION);
    switch (call->kind) {
    case SBX_CALL_ERPC:
        ei_x_encode_tuple_header(&r, 4);
        ei_x_append_buf(&r, call->tag, (int)call->tag_len);
        ei_x_encode_atom(&r, "error");
        ei_x_append_buf(&r, reason, (int)reason_len);
        ei_x_encode_empty_list(&r);
        finish(call, &r);
        break;
    case SBX_CALL_SPAWN:
        ei_x_append_buf(&r, reason, (int)reason_len);
        finish(call, &r);
        break;
    case SBX_CALL_REX:
    case SBX_CALL_REX_LEGACY:
        ei_x_encode_tuple_header(&r, 2);
        ei_x_encode_atom(&r, "badrpc");
        ei_x_encode_tuple_header(&r, 2);
        ei_x_encode_atom(&r, "EXIT");
        ei_x_append_buf(&r, reason, (int)reason_len);
        reply(call, r.buff, (size_t)r.index);
        finish_normal(call);
        break;
    case SBX_CALL_GEN:
        ei_x_encode_tuple_header(&r, 2);
        ei_x_encode_atom(&r, "error");
        ei_x_append_buf(&r, reason, (int)reason_len);
        reply(call, r.buff, (size_t)r.index);
        finish_normal(call);
        break;
    case SBX_CALL_CAST:
        finish_normal(call);
        break;
    }
    ei_x_free(&r);
}

/* An undefined function: what a real node answers for each kind of caller. */
static void fail_undef(struct sbx_call *call, const char *m, const char *f, const char *args,
                       size_t args_len) {
    ei_x_buff r;
    ei_x_new(&r);
    if (call->kind == SBX_CALL_ERPC) {
        /* {Res, error, undef, [{M,F,A,[]}]} */
        ei_x_encode_tuple_header(&r, 4);
        ei_x_append_buf(&r, call->tag, (int)call->tag_len);
        ei_x_encode_atom(&r, "error");
        ei_x_encode_atom(&r, "undef");
        encode_undef_stack(&r, m, f, args, args_len);
        finish(call, &r);
    } else if (call->kind == SBX_CALL_GEN) {
        ei_x_encode_tuple_header(&r, 3);
        ei_x_encode_atom(&r, "badarg");
        ei_x_encode_atom(&r, "request");
        ei_x_encode_atom(&r, "unknown_function");
        sbx_call_fail(call, r.buff, (size_t)r.index);
    } else {
        ei_x_encode_tuple_header(&r, 2);
        ei_x_encode_atom(&r, "undef");
        encode_undef_stack(&r, m, f, args, args_len);
        sbx_call_fail(call, r.buff, (size_t)r.index);
    }
    ei_x_free(&r);
}

/* See call.h. args must be validated and is copied. Once this
 * returns, reach the call only through its key: it may be gone. */
void sbx_call_run(struct sbx_call *call, const char *module, const char *function,
                  const char *args, size_t args_len) {
    call->started_ns = mono_ns();
    int argc = unpack_args(call, args);
    if (argc < 0) {
        ei_x_buff r;
        ei_x_new(&r);
        ei_x_encode_atom(&r, "badarg");
        sbx_call_fail(call, r.buff, (size_t)r.index);
        ei_x_free(&r);
        return;
    }
    call->argc = argc;
    const struct sbx_api_entry *e = sbx_api_find(module, function, argc);
    if (e != NULL)
        call->fn_name = e->function;
    if (e == NULL) {
        fail_undef(call, module, function, args, args_len);
        return;
    }
    /* Pending from here: a handler may finish the call from a callback before it
     * returns SBX_API_PENDING, after which the call must not be touched. */
    call->pending = 1;
    if (e->fn(call) == SBX_API_DONE)
        sbx_call_done(call);
}

/* See call.h. The call's process owns the result: do not keep it across loop iterations. */
struct sbx_call *sbx_call_find(struct sbx_node *node, uint32_t num, uint32_t serial) {
    struct sbx_proc *p = sbx_proc_find(&node->procs, num, serial);
    return p != NULL && p->ops == &call_ops ? p->data : NULL;
}

/* See call.h. The key outlives the call: once the call ends it finds nothing. */
uint64_t sbx_call_key(const struct sbx_call *call) {
    return (uint64_t)call->proc->num << 32 | call->proc->serial;
}

/* See call.h. NULL once the call has ended. */
struct sbx_call *sbx_call_from_key(struct sbx_node *node, uint64_t key) {
    return sbx_call_find(node, (uint32_t)(key >> 32), (uint32_t)key);
}
