/* trace_start / trace_stop: the API side of tracing a BEAM sandbox. Arguments are checked
 * here (trace/spec.c); the traces themselves live in trace/trace.c. */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/reply.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "dist/node.h"
#include "trace/spec.h"
#include "trace/trace.h"

/* Answers the pending call named by key with term (no version byte). The call may be
 * gone (its caller left): then nothing happens. */
static void answer_call(uint64_t key, const char *term, size_t len) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    call->cancel = NULL;
    ei_x_append_buf(&call->result, term, (int)len);
    sbx_call_done(call);
}

/* The caller of a pending trace_start/trace_stop left: its answer is dropped (a trace
 * still starting is stopped as soon as it runs). */
static void cancel_call(struct sbx_call *call) {
    sbx_trace_abandon(sbx_call_key(call));
}

/* See api.h. trace_start(Id, Spec) -> {ok, TraceRef} | {error, _}. Pending until the
 * agent runs on the sandbox's node (or refused). */
enum sbx_api_status sbx_api_trace_start(struct sbx_call *call) {
    char id[SBX_ID_MAX + 1];
    struct sbx_badarg bad = {0};
    struct sbx_trace_spec spec;
    struct sbx_beam_target target;
    struct sbx_core *core = sbx_core_get();
    const char *why;
    int idx = call->argv[0];

    if (sbx_decode_id(call->args.buff, &idx, id, &bad) != 0)
        goto badarg;
    idx = call->argv[1];
    if (sbx_trace_spec_decode(call->args.buff, &idx, &spec, &bad) != 0)
        goto badarg;
    struct sbx_sandbox *sb = sbx_sandbox_find(core, id);
    if (sb == NULL || sb->destroying) {
        sbx_reply_error(&call->result, "not_found");
        return SBX_API_DONE;
    }
    memset(&target, 0, sizeof target);
    if (sb->backend == NULL || sb->backend->beam_target == NULL || sb->backend->beam_target(sb, &target) != 0) {
        sbx_reply_error(&call->result, "unsupported");
        return SBX_API_DONE;
    }
    if (sbx_api_refuse_paused(call, sb))
        return SBX_API_DONE;
    if (sb->status != SBX_ST_RUNNING) {
        sbx_reply_error(&call->result, "not_running");
        return SBX_API_DONE;
    }
    call->cancel = cancel_call;
    if (sbx_trace_begin(core, id, &target, &spec, sbx_call_key(call), answer_call, &why) != 0) {
        call->cancel = NULL;
        if (strcmp(why, "already_tracing") == 0) {
            struct sbx_err err = {.reason_atom = "backend"};
            snprintf(err.detail, sizeof err.detail, "already tracing");
            sbx_reply_err(&call->result, "beam_node", &err);
        } else {
            sbx_reply_error(&call->result, why);
        }
        return SBX_API_DONE;
    }
    return SBX_API_PENDING;
badarg:
    sbx_reply_badarg(&call->result, &bad);
    return SBX_API_DONE;
}

/* See api.h. trace_stop(TraceRef) -> ok, once the agent has switched tracing off (at
 * most about 5 s); ok at once for a trace that has ended or is unknown. */
enum sbx_api_status sbx_api_trace_stop(struct sbx_call *call) {
    int idx = call->argv[0], type, size;
    const char *ref = call->args.buff + idx;

    if (ei_get_type(call->args.buff, &idx, &type, &size) != 0 ||
        (type != ERL_NEW_REFERENCE_EXT && type != ERL_NEWER_REFERENCE_EXT && type != ERL_REFERENCE_EXT) ||
        ei_skip_term(call->args.buff, &idx) != 0) {
        struct sbx_badarg bad = {.field = "trace_ref", .why = "not_a_reference"};
        sbx_reply_badarg(&call->result, &bad);
        return SBX_API_DONE;
    }
    call->cancel = cancel_call;
    if (sbx_trace_stop(sbx_core_get(), ref, (size_t)(call->args.buff + idx - ref), sbx_call_key(call),
                       answer_call) == 0)
        return SBX_API_PENDING;
    call->cancel = NULL;
    ei_x_encode_atom(&call->result, "ok");
    return SBX_API_DONE;
}
