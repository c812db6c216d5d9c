/* Module `sandbox`: pause(Id) and resume(Id). The id is checked like every other call's;
 * the core decides what may be paused (core/pause.h) and the answer is `ok` once the
 * backend has frozen or thawed the workload. */
#include <ei.h>

#include "api/api.h"
#include "api/reply.h"
#include "core/core.h"
#include "core/pause.h"
#include "core/sandbox.h"
#include "dist/node.h"

/* The end of a pause or resume, for a call that may be gone (key lookup): `ok`, or the
 * error (`not_running` when a stop came meanwhile, `not_found` when it was destroyed). */
static void answer(struct sbx_sandbox *sb, uint64_t key, const struct sbx_err *err) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    if (err == NULL)
        ei_x_encode_atom(&call->result, "ok");
    else
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), err);
    sbx_call_done(call);
}

/* pause/1 and resume/1: `ok` at once or once the backend answers (pending). A caller that
 * leaves abandons the answer, not the operation. */
static enum sbx_api_status do_pause(struct sbx_call *call, int resume) {
    struct sbx_err err = {0};
    struct sbx_sandbox *sb = sbx_api_sandbox_arg(call, 0);
    if (sb == NULL)
        return SBX_API_DONE;
    int rc = sbx_sandbox_pause(sb, resume, sbx_call_key(call), answer, &err);
    if (rc == 0)
        return SBX_API_PENDING;
    if (rc > 0)
        ei_x_encode_atom(&call->result, "ok");
    else
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &err);
    return SBX_API_DONE;
}

/* See api.h. */
enum sbx_api_status sbx_api_pause(struct sbx_call *call) { return do_pause(call, 0); }
/* See api.h. */
enum sbx_api_status sbx_api_resume(struct sbx_call *call) { return do_pause(call, 1); }
