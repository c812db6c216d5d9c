/* Calling functions on a BEAM node a sandbox hosts (sandboxd as the erpc client).
 *
 * sbx_remote_call(node, target, M, F, Args, timeout_ms, done, key):
 *   1. registers target->cookie as the cookie for target->node (sbx_node_set_peer_cookie:
 *      it stays until someone calls sbx_node_forget_peer_cookie(node, target->node); the
 *      owner of the target, e.g. the beam_node backend, does that when the sandbox goes);
 *   2. connects with this node's initiating handshake (or reuses an existing connection);
 *   3. sends SPAWN_REQUEST erpc:execute_call(Ref, M, F, Args) with a monitor, from a
 *      process of its own (one sbx_proc per call, freed when the call ends);
 *   4. calls done(key, &result) exactly once, later (never inside sbx_remote_call), unless
 *      the call is cancelled first. Outcomes:
 *        SBX_REMOTE_VALUE        M:F(Args...) returned: term = Value
 *        SBX_REMOTE_EXCEPTION    it raised: cls = "throw" | "error" | "exit", term = Reason,
 *                                stack = Stack for "error" (NULL otherwise). A remote process
 *                                that died another way (killed, noproc) is cls "exit" with
 *                                Reason its exit reason. cls "erpc" is erpc's own error
 *                                {erpc, Reason}: a refused spawn (Reason notsup,
 *                                system_limit, ...) or erpc's argument check.
 *        SBX_REMOTE_TIMEOUT      no answer within timeout_ms (the remote process may still
 *                                run to its end; its late answer is dropped)
 *        SBX_REMOTE_NOCONNECTION the node could not be reached (no epmd entry, refused,
 *                                wrong cookie) or the connection went down mid-call
 *      term/stack are encoded terms WITHOUT version byte, valid only during done(); why is
 *      a static text for logs (never contains the cookie).
 *   The translation to what rpc:call returns is sbx_remote_encode_rpc_result().
 *
 * key is the caller's own handle (e.g. sbx_call_key(call) or a sandbox serial), never
 * dereferenced here. sbx_remote_cancel(node, done, key) drops every pending call started
 * with that done and key: done never runs for them. done may start or cancel calls.
 *
 * A local process whose messages you handle yourself (e.g. a sink the traced node sends
 * to): dist/proc.h + dist/node.h already offer it:
 *     struct sbx_proc *p = sbx_proc_spawn(&node->procs, &my_ops, my_data);
 *     sbx_node_encode_self_pid(node, &x, p);          -- its pid, to send to the remote side
 *   my_ops.message(p, from, msg, len) gets every message (validated term, with version
 *   byte; messages from the BEAM node arrive once a connection to it is up, e.g. after a
 *   sbx_remote_call); my_ops.conn_down(p, conn_id) when a connection goes down (compare
 *   with sbx_remote_conn_id()); end it with sbx_node_proc_exit(node, p, reason, len)
 *   (sends EXIT/DOWN to whoever linked or monitors it; frees p, not p->data).
 *   sbx_node_send_msg(node, p, &rpid, NULL, 0, &msg) sends from it.
 */
#ifndef SBX_RPC_REMOTE_H
#define SBX_RPC_REMOTE_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"

struct sbx_node;

enum sbx_remote_kind {
    SBX_REMOTE_VALUE,
    SBX_REMOTE_EXCEPTION,
    SBX_REMOTE_TIMEOUT,
    SBX_REMOTE_NOCONNECTION
};

struct sbx_remote_result {
    enum sbx_remote_kind kind;
    const char *cls;   /* EXCEPTION: "throw", "error", "exit" or "erpc"; else NULL */
    const char *term;  /* VALUE: Value; EXCEPTION: Reason; else NULL */
    size_t term_len;
    const char *stack; /* EXCEPTION "error": Stack; else NULL */
    size_t stack_len;
    const char *why;   /* TIMEOUT / NOCONNECTION: static text; else NULL */
};

typedef void (*sbx_remote_done_fn)(uint64_t key, const struct sbx_remote_result *res);

/* Largest timeout accepted (ms); longer ones are clamped to it. */
#define SBX_REMOTE_TIMEOUT_MAX_MS (24 * 3600 * 1000)

/* Starts M:F(Args) on t->node (see the top of this file). m and f are atom names (UTF-8,
 * at most 255 characters); args is an encoded proper list without version byte; all are
 * copied. timeout_ms <= 0 means 5000. Returns 0 (done will run unless cancelled), or -1
 * (invalid node name or cookie, bad atom, out of memory) and done never runs. */
int sbx_remote_call(struct sbx_node *node, const struct sbx_beam_target *t, const char *m,
                    const char *f, const char *args, size_t args_len, int timeout_ms,
                    sbx_remote_done_fn done, uint64_t key);

/* Cancels every pending call started with (done, key); returns how many. */
size_t sbx_remote_cancel(struct sbx_node *node, sbx_remote_done_fn done, uint64_t key);

/* The id of the connection that is up to node_name, or 0. */
uint64_t sbx_remote_conn_id(const struct sbx_node *node, const char *node_name);

/* Appends to x what rpc:call(N, M, F, A) returns for res on OTP 25+: Value;
 * throw -> Value thrown ({badrpc, V} if V is {'EXIT', _}); exit -> {badrpc, {'EXIT', Reason}};
 * error -> {badrpc, {'EXIT', {Reason, Stack}}}; erpc -> {badrpc, nodedown | notsup |
 * {'EXIT', Reason}}; timeout -> {badrpc, timeout}; noconnection -> {badrpc, nodedown}. */
void sbx_remote_encode_rpc_result(ei_x_buff *x, const struct sbx_remote_result *res);

#endif
