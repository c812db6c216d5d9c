/* The registered processes a node must have for OTP callers: net_kernel (net_adm:ping),
 * rex (rpc:block_call, erl_call) and sandboxd (GenServer.call({:sandboxd, node}, ...)),
 * and the handler of spawn requests (erpc:call, rpc:call, rpc:cast, spawn/4). */
#ifndef SBX_RPC_SERVICES_H
#define SBX_RPC_SERVICES_H

struct sbx_node;

/* Registers the three processes and installs the spawn handler. 0, or -1 when out of
 * memory (nothing registered then). */
int sbx_services_start(struct sbx_node *node);

#endif
