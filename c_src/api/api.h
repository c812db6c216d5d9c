/* The functions this node exports (module `sandbox`, and erlang:node/0 for
 * rpc:multicall), one table pairing names with handlers. */
#ifndef SBX_API_API_H
#define SBX_API_API_H

#include "rpc/call.h"

enum sbx_api_status {
    SBX_API_DONE,   /* call->result holds the value; the caller answers it */
    SBX_API_PENDING /* the handler set call->cancel and will call sbx_call_done later */
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

/* Version string reported by info() and --version. */
#define SBX_VERSION "0.1.0"

#endif
