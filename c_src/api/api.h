/* The functions this node exports (module `sandbox`, and erlang:node/0 for
 * rpc:multicall), one table pairing names with handlers. */
#ifndef SBX_API_API_H
#define SBX_API_API_H

#include "rpc/call.h"

enum sbx_api_status {
    SBX_API_DONE,   /* call->result holds the value; the caller answers it */
    SBX_API_PENDING /* the handler set call->cancel and finishes the call later, perhaps
                       already did: the caller must not touch the call after this */
};

/* A handler reads its arguments from call->args at call->argv[0..argc) (validated
 * terms) and writes its value into call->result. It never frees the call. */
typedef enum sbx_api_status (*sbx_api_fn)(struct sbx_call *call);

struct sbx_api_entry {
    const char *module;
    const char *function;
    int arity;
    sbx_api_fn fn;
};

/* The entry for module:function/arity, or NULL (the caller answers undef). */
const struct sbx_api_entry *sbx_api_find(const char *module, const char *function, int arity);

/* Handlers (api_node.c). */
enum sbx_api_status sbx_api_ping(struct sbx_call *call);
enum sbx_api_status sbx_api_info(struct sbx_call *call);
enum sbx_api_status sbx_api_erlang_node(struct sbx_call *call);
enum sbx_api_status sbx_api_net_ping(struct sbx_call *call);

/* Handlers (api_sandbox.c, api_files.c). */
enum sbx_api_status sbx_api_create(struct sbx_call *call);
enum sbx_api_status sbx_api_destroy(struct sbx_call *call);
enum sbx_api_status sbx_api_stop(struct sbx_call *call);
enum sbx_api_status sbx_api_start(struct sbx_call *call);
enum sbx_api_status sbx_api_restart(struct sbx_call *call);
enum sbx_api_status sbx_api_get(struct sbx_call *call);
enum sbx_api_status sbx_api_list0(struct sbx_call *call);
enum sbx_api_status sbx_api_list1(struct sbx_call *call);
enum sbx_api_status sbx_api_exec2(struct sbx_call *call);
enum sbx_api_status sbx_api_exec3(struct sbx_call *call);
enum sbx_api_status sbx_api_logs1(struct sbx_call *call);
enum sbx_api_status sbx_api_logs2(struct sbx_call *call);
enum sbx_api_status sbx_api_metrics(struct sbx_call *call);
enum sbx_api_status sbx_api_processes(struct sbx_call *call);
enum sbx_api_status sbx_api_shell(struct sbx_call *call);
enum sbx_api_status sbx_api_subscribe(struct sbx_call *call);
enum sbx_api_status sbx_api_unsubscribe(struct sbx_call *call);
enum sbx_api_status sbx_api_copy_to(struct sbx_call *call);
enum sbx_api_status sbx_api_copy_from(struct sbx_call *call);

struct sbx_sandbox;
/* The sandbox named by argument i (an id, checked), or NULL with {error, {badarg, id, _}}
 * or {error, not_found} (also while it is being destroyed) answered. */
struct sbx_sandbox *sbx_api_sandbox_arg(struct sbx_call *call, int i);
/* {error, paused} answered (1) when sb is paused (core/pause.h), else 0. */
int sbx_api_refuse_paused(struct sbx_call *call, const struct sbx_sandbox *sb);

/* Handlers (api_pause.c): pause(Id), resume(Id). */
enum sbx_api_status sbx_api_pause(struct sbx_call *call);
enum sbx_api_status sbx_api_resume(struct sbx_call *call);

/* Call cancel shared by calls waiting on a backend query or copy whose call->state is the
 * sandbox id (malloc'd): the backend drops it through exec_cancel with the call's key. */
void sbx_api_cancel_backend_call(struct sbx_call *call);

/* Handlers (api_trace.c). */
enum sbx_api_status sbx_api_trace_start(struct sbx_call *call);
enum sbx_api_status sbx_api_trace_stop(struct sbx_call *call);

/* Handlers (api_beam.c): calls into a sandbox's BEAM node. remote_call(Id, M, F, A) and
 * remote_call(Id, M, F, A, TimeoutMs | infinity) answer what rpc:call would; get_state(Id,
 * PidOrName) answers {ok, State} (sys:get_state). */
enum sbx_api_status sbx_api_remote_call4(struct sbx_call *call);
enum sbx_api_status sbx_api_remote_call5(struct sbx_call *call);
enum sbx_api_status sbx_api_get_state(struct sbx_call *call);
/* processes(Id) of a sandbox whose BEAM node another backend hosts (docker with `beam`):
 * the node's Erlang processes, as for beam_node. Called by sbx_api_processes. */
struct sbx_sandbox;
enum sbx_api_status sbx_api_beam_processes(struct sbx_call *call, struct sbx_sandbox *sb);

/* Version string reported by info() and --version. */
#define SBX_VERSION "0.1.0"

#endif
