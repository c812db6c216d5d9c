/* Traces of BEAM sandboxes: the registry of running traces, the sink process each one
 * has in sandboxd's process table, and the relay of the agent's events to subscribers.
 *
 * A trace belongs to its sandbox (not to whoever started it). Its life:
 *   sbx_trace_begin: a sink process is spawned, sbx_trace_agent:start(Map) is called on
 *     the sandbox's node through rpc/remote.h (after code:load_binary of
 *     priv/sbx_trace_agent.beam when the node answers undef), and done(key, Answer) gets
 *     {ok, TraceRef} or {error, _} to answer the caller with.
 *   running: the agent sends {sbx_trace, Ref, [Event]} and at its end
 *     {sbx_trace_done, Ref, FinalEvent} to the sink; each event map is published as a
 *     `trace` event of the sandbox (core/subs.h applies its per-subscriber bounds).
 *   end: the final event (from the agent, or made here when the agent's node went down,
 *     the agent died, or it missed its deadline by 5 s), then the sink exits and the
 *     record is freed. sbx_trace_stop asks the agent to stop and answers once it has
 *     cleaned up (or after 5 s); destroy of the sandbox stops its traces at once.
 * Every callback is looked up by a uint64_t key (never a pointer). */
#ifndef SBX_TRACE_TRACE_H
#define SBX_TRACE_TRACE_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"

struct sbx_core;
struct sbx_trace_spec;

/* Traces running at once, over all sandboxes. */
#define SBX_TRACE_MAX 64

/* The answer for a caller: an encoded term (no version byte), valid during the call. */
typedef void (*sbx_trace_answer_fn)(uint64_t key, const char *term, size_t len);

/* Starts a trace of sandbox id on target. 0: done(key, Answer) runs later (never inside
 * this call), exactly once unless sbx_trace_abandon(key) runs first; Answer is
 * {ok, TraceRef} or {error, _} ({error, {backend, beam_node, <<"already tracing">>}} when
 * another tracer runs on that node). -1 with *why and done never runs: limit_reached
 * (SBX_TRACE_MAX), already_tracing (this sandbox has a trace), no_memory. */
int sbx_trace_begin(struct sbx_core *core, const char *id, const struct sbx_beam_target *target,
                    const struct sbx_trace_spec *spec, uint64_t key, sbx_trace_answer_fn done,
                    const char **why);

/* The caller of a begin or stop with key left: its done never runs. A trace whose start
 * is still under way is stopped as soon as it runs. */
void sbx_trace_abandon(uint64_t key);

/* Stops the trace named by ref (encoded reference). 1: nothing to wait for (unknown or
 * ended trace: answer ok now); 0: done(key, ok) runs once the agent has cleaned up. */
int sbx_trace_stop(struct sbx_core *core, const char *ref, size_t ref_len, uint64_t key,
                   sbx_trace_answer_fn done);

/* The sandbox id is being destroyed: its traces end now (reason destroyed; the agent is
 * told to stop). */
void sbx_trace_sandbox_gone(struct sbx_core *core, const char *id);

/* Shutdown: frees every trace (the agents see sandboxd go and stop by themselves). */
void sbx_trace_free_all(struct sbx_core *core);

/* Number of traces in the registry (starting, running or stopping). */
size_t sbx_trace_count(void);

#endif
