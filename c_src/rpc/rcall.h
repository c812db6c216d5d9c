/* This node as an erpc client: calling M:F(Args) on another node the way erpc:call
 * does (SPAWN_REQUEST of erpc:execute_call/4 with a monitor). */
#ifndef SBX_RPC_RCALL_H
#define SBX_RPC_RCALL_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "dist/proc.h"

struct sbx_node;

/* Sends the request from local process `from` to the node behind conn_id. The answer
 * reaches `from` as the message {'DOWN', Ref, process, Pid, Reason} with Reason
 * {Ref, return, Value} on success (or {Ref, throw|exit, _} / {Ref, error, _, _}); if the
 * peer refuses the spawn, as {'DOWN', Ref, process, Why, spawn_failed}. ref_out receives
 * Ref (encoded, no version byte). args is an encoded proper list (no version byte).
 * 0, or -1 when that node is not connected. */
int sbx_rcall(struct sbx_node *node, const struct sbx_proc *from, uint64_t conn_id,
              const char *m, const char *f, const char *args, size_t args_len, ei_x_buff *ref_out);

/* Reads {'DOWN', Ref, process, _, {Ref, return, Value}} in msg (with version byte):
 * sets *ref and *ref_len, and *value_idx (the index of Value in msg) and returns 1; returns 0
 * for another 'DOWN' (then *value_idx is -1) and -1 for anything else. */
int sbx_rcall_result(const char *msg, const char **ref, size_t *ref_len, int *value_idx);

#endif
