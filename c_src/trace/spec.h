/* trace_start's Spec: decoding and full validation in C (so a bad Spec is a
 * {badarg, Field, Why} before anything reaches the traced node), and the map handed to
 * the agent (src/sbx_trace_agent.erl, start/1). */
#ifndef SBX_TRACE_SPEC_H
#define SBX_TRACE_SPEC_H

#include <ei.h>
#include <stddef.h>

#include "core/config.h"

#define SBX_TRACE_MAX_EVENTS_DEFAULT 1000
#define SBX_TRACE_MAX_EVENTS_MAX 100000
#define SBX_TRACE_DURATION_DEFAULT 60000
#define SBX_TRACE_DURATION_MAX 600000
#define SBX_TRACE_MSG_BYTES_DEFAULT 4096
#define SBX_TRACE_MSG_BYTES_MIN 64
#define SBX_TRACE_MSG_BYTES_MAX (1 << 20)
#define SBX_TRACE_PIDS_MAX 1000
/* The agent's start map layout and behaviour (sbx_trace_agent's ?VSN): sent as vsn.
 * 2: batches bounded by bytes as well as by count. */
#define SBX_TRACE_AGENT_VSN 2

/* Trace flags (bits), as named in the API. */
enum {
    SBX_TF_SEND = 1u << 0,
    SBX_TF_RECEIVE = 1u << 1,
    SBX_TF_CALL = 1u << 2,
    SBX_TF_RETURN = 1u << 3,
    SBX_TF_PROCS = 1u << 4,
    SBX_TF_GC = 1u << 5,
    SBX_TF_RUNNING = 1u << 6
};

/* A decoded Spec. The term pointers point into the caller's buffer (encoded, no version
 * byte): the struct owns nothing and lives no longer than that buffer. */
struct sbx_trace_spec {
    const char *pids;       /* all | new | existing atom, or the list as sent */
    size_t pids_len;
    unsigned flags;         /* SBX_TF_*; default send | receive */
    int has_mfa;
    char mod[MAXATOMLEN_UTF8], fun[MAXATOMLEN_UTF8];
    int arity;              /* -1: '_' */
    const char *match_spec; /* a list as sent, or NULL */
    size_t match_spec_len;
    long max_events, duration_ms, max_msg_bytes;
    long rate_max, rate_per_ms; /* rate_max 0: no rate limit */
};

/* Decodes Spec (a map with atom keys) at buf+*idx. 0, or -1 with *err:
 * {spec, not_a_map}, {Key, unknown_key}, {pids | flags | mfa | match_spec | rate, invalid},
 * {max_events | duration_ms | max_msg_bytes, not_an_integer | out_of_range},
 * {mfa, missing} (call or return without mfa), {mfa, needs_call_flag}. Pure: touches
 * nothing but *out and *err. */
int sbx_trace_spec_decode(const char *buf, int *idx, struct sbx_trace_spec *out,
                          struct sbx_badarg *err);

/* Appends the agent's start map (see sbx_trace_agent:start/1): vsn, ref (ref, encoded),
 * sink (pid, encoded), and every field of spec with its defaults applied. */
void sbx_trace_spec_encode(const struct sbx_trace_spec *spec, const char *ref, size_t ref_len,
                           const char *sink, size_t sink_len, ei_x_buff *x);

#endif
