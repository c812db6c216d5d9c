/* A call being served: the process that serves it, who asked and how to answer.
 *
 * Every request that runs an API function (erpc spawn_request, gen_server call, rex
 * call) gets a process of its own in the node's process table. An API function either
 * answers at once or keeps the call pending and answers from a later callback; the
 * process stays alive meanwhile, so the caller's monitor or link sees it, and it is
 * killed (cancel runs) if the caller's connection goes down. */
#ifndef SBX_RPC_CALL_H
#define SBX_RPC_CALL_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "dist/proc.h"

struct sbx_node;

enum sbx_call_kind {
    SBX_CALL_ERPC,      /* erpc:execute_call/4: exit {Res, return, V} */
    SBX_CALL_CAST,      /* erpc:execute_cast/3: exit normal */
    SBX_CALL_SPAWN,     /* spawn(Node, M, F, A): exit normal */
    SBX_CALL_GEN,       /* gen_server call to `sandboxd`: reply {Tag, V} */
    SBX_CALL_REX,       /* gen_server call to rex: reply {Tag, V} */
    SBX_CALL_REX_LEGACY /* {Pid, {call, M, F, A, GL}} to rex: send {rex, V} */
};

struct sbx_call;
/* Releases the work of a pending call whose caller is gone. Must not reply. */
typedef void (*sbx_call_cancel_fn)(struct sbx_call *call);
/* A message sent to the call's process (msg: validated term with version byte). */
typedef void (*sbx_call_message_fn)(struct sbx_call *call, const char *msg, size_t len);

struct sbx_call {
    struct sbx_node *node;
    struct sbx_proc *proc; /* serves the call; proc->data == this */
    enum sbx_call_kind kind;
    uint64_t conn_id; /* the caller's connection */
    struct sbx_rpid caller;
    uint32_t replier_num, replier_serial; /* GEN/REX: the registered process answering */
    char *tag;                            /* ERPC: Res; GEN/REX: the reply tag; raw term */
    size_t tag_len;
    char *alias; /* GEN/REX: the alias reference when the tag is [alias|Ref] */
    size_t alias_len;
    ei_x_buff args; /* the arguments, encoded one after another */
    int argc;
    int *argv; /* offsets of each argument in args.buff */
    ei_x_buff result; /* the value to answer with (no version byte) */
    int pending;
    sbx_call_cancel_fn cancel;
    sbx_call_message_fn on_message;
    void *state; /* the API function's own, released by its cancel or on completion */
    const char *fn_name; /* the API function run (static), for the rpc counters */
    int64_t started_ns;  /* monotonic, when it was run */
    int counted;         /* already counted in core/stats */
};

/* How a new call answers. tag/alias are copied. */
struct sbx_call_spec {
    enum sbx_call_kind kind;
    uint64_t conn_id;
    struct sbx_rpid caller;
    const struct sbx_proc *replier; /* GEN/REX only */
    const char *tag;
    size_t tag_len;
    const char *alias;
    size_t alias_len;
};

/* Creates a call and its serving process. NULL when out of memory. The node owns the
 * process; the process owns the call. */
struct sbx_call *sbx_call_new(struct sbx_node *node, const struct sbx_call_spec *spec);

/* Runs module:function with the encoded argument list args (raw list term). Unknown
 * functions answer like a real node's undef. The call may be finished (and freed)
 * before this returns. */
void sbx_call_run(struct sbx_call *call, const char *module, const char *function,
                  const char *args, size_t args_len);

/* Answers with call->result and ends the call's process; frees the call. */
void sbx_call_done(struct sbx_call *call);

/* Answers with an exception {Class, Reason} where reason is an encoded term (no version
 * byte) and ends the call: erpc gets {Res, error, Reason, []}, rex {badrpc, {'EXIT',
 * Reason}}, gen calls {error, Reason}. Frees the call. */
void sbx_call_fail(struct sbx_call *call, const char *reason, size_t reason_len);

/* Looks up a live call by its process (for callbacks that hold a pid, not a pointer):
 * NULL if that process is gone or is not a call. */
struct sbx_call *sbx_call_find(struct sbx_node *node, uint32_t num, uint32_t serial);

/* A key naming the call's process for deferred callbacks (see sbx_call_from_key). */
uint64_t sbx_call_key(const struct sbx_call *call);
struct sbx_call *sbx_call_from_key(struct sbx_node *node, uint64_t key);

#endif
