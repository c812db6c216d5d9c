/* remote_call and get_state: calls into the BEAM node a sandbox hosts (beam_node, or a
 * container with `beam`), through the backend's beam_target and rpc/remote.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/reply.h"
#include "backends/beam/beam.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "dist/control.h"
#include "rpc/remote.h"

#define GET_STATE_MS 5000

/* {error, {badarg, Field, Why}} with static names. */
static void badarg(struct sbx_call *call, const char *field, const char *why) {
    struct sbx_badarg b = {.field = field, .why = why};
    sbx_reply_badarg(&call->result, &b);
}

/* The sandbox named by argument 0 and its node, or NULL with the error answered:
 * badarg, not_found, unsupported (no BEAM node), or the backend's "not running". */
static struct sbx_sandbox *target_arg(struct sbx_call *call, struct sbx_beam_target *t) {
    char id[SBX_ID_MAX + 1];
    struct sbx_badarg bad = {0};
    int idx = call->argv[0];
    if (sbx_decode_id(call->args.buff, &idx, id, &bad) != 0) {
        sbx_reply_badarg(&call->result, &bad);
        return NULL;
    }
    struct sbx_sandbox *sb = sbx_sandbox_find(sbx_core_get(), id);
    if (sb == NULL || sb->destroying) {
        sbx_reply_error(&call->result, "not_found");
        return NULL;
    }
    if (sbx_api_refuse_paused(call, sb))
        return NULL;
    if (sb->backend == NULL || sb->backend->beam_target == NULL ||
        (sb->cfg.type != SBX_TYPE_BEAM_NODE && !sb->cfg.has_beam)) {
        sbx_reply_error(&call->result, "unsupported");
        return NULL;
    }
    if (sb->backend->beam_target(sb, t) != 0) {
        struct sbx_err e = {.reason_atom = "backend", .detail = "the node is not running"};
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &e);
        return NULL;
    }
    return sb;
}

/* An atom argument into out (at most 255 characters). 0 or -1. */
static int atom_arg(struct sbx_call *call, int i, char out[MAXATOMLEN_UTF8]) {
    int idx = call->argv[i], type, size;
    if (ei_get_type(call->args.buff, &idx, &type, &size) != 0 ||
        (type != ERL_ATOM_EXT && type != ERL_SMALL_ATOM_EXT && type != ERL_ATOM_UTF8_EXT &&
         type != ERL_SMALL_ATOM_UTF8_EXT))
        return -1;
    return sbx_decode_atom(call->args.buff, &idx, out);
}

/* 1 if argument i is a list (is_list/1, as rpc:call and erpc:call check it: an improper
 * tail fails in the node's apply, as it does for them); sets its span (into call->args). */
static int list_arg(struct sbx_call *call, int i, const char **start, size_t *len) {
    const char *b = call->args.buff;
    int idx = call->argv[i], type, size;
    if (ei_get_type(b, &idx, &type, &size) != 0 ||
        (type != ERL_LIST_EXT && type != ERL_NIL_EXT && type != ERL_STRING_EXT))
        return 0;
    /* The arguments sit one after another in call->args: no need to walk the list. */
    int end = i + 1 < call->argc ? call->argv[i + 1] : call->args.index;
    *start = b + call->argv[i];
    *len = (size_t)(end - call->argv[i]);
    return 1;
}

/* A timeout argument: a non-negative integer (ms) or infinity. 0 or -1. */
static int timeout_arg(struct sbx_call *call, int i, int *ms) {
    char atom[MAXATOMLEN_UTF8];
    long long v;
    int idx = call->argv[i];
    if (ei_decode_longlong(call->args.buff, &idx, &v) == 0) {
        if (v < 0)
            return -1;
        *ms = v > SBX_REMOTE_TIMEOUT_MAX_MS ? SBX_REMOTE_TIMEOUT_MAX_MS : (v == 0 ? 1 : (int)v);
        return 0;
    }
    if (atom_arg(call, i, atom) == 0 && strcmp(atom, "infinity") == 0) {
        *ms = SBX_REMOTE_TIMEOUT_MAX_MS;
        return 0;
    }
    return -1;
}

/* remote_call's answer: exactly what rpc:call would have returned. */
static void rc_done(uint64_t key, const struct sbx_remote_result *res) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    sbx_remote_encode_rpc_result(&call->result, res);
    sbx_call_done(call);
}

/* Cancel of remote_call (the caller left): the remote call is dropped. */
static void rc_cancel(struct sbx_call *call) {
    sbx_remote_cancel(call->node, rc_done, sbx_call_key(call));
}

/* remote_call/4,5: M:F(A) in the sandbox's node; errors of our own ({error, ...}) only for
 * bad arguments and sandboxes without a running node. */
static enum sbx_api_status remote_call(struct sbx_call *call, int timeout_ms) {
    struct sbx_beam_target t;
    char m[MAXATOMLEN_UTF8], f[MAXATOMLEN_UTF8];
    const char *args;
    size_t args_len;
    if (atom_arg(call, 1, m) != 0) {
        badarg(call, "module", "not_an_atom");
        return SBX_API_DONE;
    }
    if (atom_arg(call, 2, f) != 0) {
        badarg(call, "function", "not_an_atom");
        return SBX_API_DONE;
    }
    if (!list_arg(call, 3, &args, &args_len)) {
        badarg(call, "args", "not_a_list");
        return SBX_API_DONE;
    }
    if (target_arg(call, &t) == NULL)
        goto done;
    call->cancel = rc_cancel;
    if (sbx_remote_call(call->node, &t, m, f, args, args_len, timeout_ms, rc_done,
                        sbx_call_key(call)) != 0) {
        call->cancel = NULL;
        sbx_reply_error(&call->result, "no_memory");
        goto done;
    }
    memset(&t, 0, sizeof t);
    return SBX_API_PENDING;
done:
    memset(&t, 0, sizeof t);
    return SBX_API_DONE;
}

/* See api.h. rpc:call's default: no timeout (bounded to a day; a caller that leaves
 * cancels it). */
enum sbx_api_status sbx_api_remote_call4(struct sbx_call *call) {
    return remote_call(call, SBX_REMOTE_TIMEOUT_MAX_MS);
}

/* See api.h. */
enum sbx_api_status sbx_api_remote_call5(struct sbx_call *call) {
    int ms;
    if (timeout_arg(call, 4, &ms) != 0) {
        badarg(call, "timeout", "not_a_timeout");
        return SBX_API_DONE;
    }
    return remote_call(call, ms);
}

/* Answers {ok, Value} or {error, timeout} for res and returns 1; 0 (nothing written) for
 * any other outcome. call stays the caller's. */
static int reply_value_or_timeout(struct sbx_call *call, const struct sbx_remote_result *res) {
    if (res->kind == SBX_REMOTE_VALUE) {
        ei_x_encode_tuple_header(&call->result, 2);
        ei_x_encode_atom(&call->result, "ok");
        ei_x_append_buf(&call->result, res->term, (int)res->term_len);
        return 1;
    }
    if (res->kind == SBX_REMOTE_TIMEOUT) {
        sbx_reply_error(&call->result, "timeout");
        return 1;
    }
    return 0;
}

/* get_state's answer: {ok, State}, {error, timeout}, or {error, {backend, Type, Why}}. */
static void gs_done(uint64_t key, const struct sbx_remote_result *res) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    char *s = NULL;
    int idx = 0;
    if (call == NULL)
        return;
    const char *type = call->state != NULL ? call->state : "beam_node";
    if (!reply_value_or_timeout(call, res)) {
        struct sbx_err e = {.reason_atom = "backend"};
        if (res->kind == SBX_REMOTE_EXCEPTION && ei_s_print_term(&s, res->term, &idx) >= 0)
            snprintf(e.detail, sizeof e.detail, "sys:get_state failed: %s %s", res->cls, s);
        else
            snprintf(e.detail, sizeof e.detail, "%s", res->why != NULL ? res->why : "failed");
        sbx_reply_err(&call->result, type, &e);
    }
    free(s);
    call->state = NULL; /* static type name */
    sbx_call_done(call);
}

/* Cancel of get_state. */
static void gs_cancel(struct sbx_call *call) {
    sbx_remote_cancel(call->node, gs_done, sbx_call_key(call));
    call->state = NULL;
}

/* See api.h. get_state(Id, PidOrName): sys:get_state(PidOrName, 5000) in the node. */
enum sbx_api_status sbx_api_get_state(struct sbx_call *call) {
    struct sbx_beam_target t;
    const char *b = call->args.buff, *who;
    size_t who_len;
    int idx = call->argv[1], type, size;
    if (ei_get_type(b, &idx, &type, &size) != 0 ||
        (type != ERL_ATOM_EXT && type != ERL_SMALL_ATOM_EXT && type != ERL_ATOM_UTF8_EXT &&
         type != ERL_SMALL_ATOM_UTF8_EXT && type != ERL_PID_EXT && type != ERL_NEW_PID_EXT) ||
        sbx_term_span(b, &idx, &who, &who_len) != 0) {
        badarg(call, "pid", "not_a_pid_or_name");
        return SBX_API_DONE;
    }
    struct sbx_sandbox *sb = target_arg(call, &t);
    if (sb == NULL)
        return SBX_API_DONE;
    ei_x_buff a;
    ei_x_new(&a);
    ei_x_encode_list_header(&a, 2);
    ei_x_append_buf(&a, who, (int)who_len);
    ei_x_encode_long(&a, GET_STATE_MS);
    ei_x_encode_empty_list(&a);
    call->state = (void *)sbx_type_name(sb->cfg.type);
    call->cancel = gs_cancel;
    int rc = sbx_remote_call(call->node, &t, "sys", "get_state", a.buff, (size_t)a.index,
                             GET_STATE_MS + 1000, gs_done, sbx_call_key(call));
    ei_x_free(&a);
    memset(&t, 0, sizeof t);
    if (rc != 0) {
        call->state = NULL;
        call->cancel = NULL;
        sbx_reply_error(&call->result, "no_memory");
        return SBX_API_DONE;
    }
    return SBX_API_PENDING;
}

/* The answer of processes for a sandbox whose BEAM node another backend hosts: {ok, List}
 * or {error, {backend, Type, Why}} / {error, timeout}. */
static void bp_done(uint64_t key, const struct sbx_remote_result *res) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    const char *type = call->state != NULL ? call->state : "docker";
    if (!reply_value_or_timeout(call, res)) {
        struct sbx_err e = {.reason_atom = "backend"};
        snprintf(e.detail, sizeof e.detail, "%s",
                 res->kind == SBX_REMOTE_NOCONNECTION ? "the node is not reachable"
                                                      : "the node's helper failed");
        sbx_reply_err(&call->result, type, &e);
    }
    call->state = NULL; /* static type name */
    sbx_call_done(call);
}

/* Cancel of such a processes call. */
static void bp_cancel(struct sbx_call *call) {
    sbx_beam_helper_cancel(bp_done, sbx_call_key(call));
    call->state = NULL;
}

/* See api.h. */
enum sbx_api_status sbx_api_beam_processes(struct sbx_call *call, struct sbx_sandbox *sb) {
    struct sbx_beam_target t;
    ei_x_buff a;
    if (sb->backend->beam_target == NULL || sb->backend->beam_target(sb, &t) != 0) {
        struct sbx_err e = {.reason_atom = "backend", .detail = "the node is not running"};
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &e);
        return SBX_API_DONE;
    }
    ei_x_new(&a);
    ei_x_encode_empty_list(&a);
    call->state = (void *)sbx_type_name(sb->cfg.type);
    call->cancel = bp_cancel;
    int rc = sbx_beam_helper_call(&t, "processes", a.buff, (size_t)a.index, 10000, bp_done,
                                  sbx_call_key(call));
    ei_x_free(&a);
    memset(&t, 0, sizeof t);
    if (rc != 0) {
        call->state = NULL;
        call->cancel = NULL;
        sbx_reply_error(&call->result, "no_memory");
        return SBX_API_DONE;
    }
    return SBX_API_PENDING;
}
