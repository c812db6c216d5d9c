/* Daemon-wide counters (rpc calls, events) and the one local event tap: what the HTTP
 * side (c_src/web) reads and listens to, kept here so that the files it observes need
 * only a line each to feed it. Everything runs on the loop: no locks. */
#ifndef SBX_CORE_STATS_H
#define SBX_CORE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct sbx_sandbox;

/* Results an rpc call is counted under. */
enum sbx_rpc_result {
    SBX_RPC_OK = 0,    /* answered with a value that is not {error, _} */
    SBX_RPC_ERROR,     /* answered {error, _} */
    SBX_RPC_EXCEPTION, /* failed: badarg, undef, an exception */
    SBX_RPC_CANCELLED, /* the caller left before the answer */
    SBX_RPC_RESULTS
};

/* rpc latency histogram bucket bounds, in seconds (+Inf implied after the last). */
#define SBX_RPC_BUCKETS 14
extern const double sbx_rpc_bucket_le[SBX_RPC_BUCKETS];

/* Calls per function name (the API table's names, plus "unknown" for undefined ones). */
#define SBX_RPC_MAX_FUNCS 48
struct sbx_rpc_fn_stats {
    const char *name; /* static (the API table's), NULL = slot unused */
    uint64_t calls[SBX_RPC_RESULTS];
};

struct sbx_stats {
    struct sbx_rpc_fn_stats fns[SBX_RPC_MAX_FUNCS];
    uint64_t rpc_buckets[SBX_RPC_BUCKETS + 1]; /* not cumulative; last = above every bound */
    uint64_t rpc_count;
    double rpc_seconds_sum;
    uint64_t events_delivered;     /* sandbox_event messages sent to subscribers */
    uint64_t trace_events_relayed; /* trace events published */
};

/* The daemon's counters. */
extern struct sbx_stats sbx_stats;

/* Counts one finished call of function `name` (static string; NULL = unknown) that took
 * ns nanoseconds. */
void sbx_stats_rpc(const char *name, enum sbx_rpc_result result, int64_t ns);

/* A listener on the loop for every sandbox event published, beside the subscribers. */
struct sbx_tap {
    /* 1 if it wants topic events of sb (makes the core produce them). */
    int (*wants)(void *arg, const struct sbx_sandbox *sb, enum sbx_topic topic);
    /* An event: payload is the encoded map (or list for processes), no version byte;
     * valid during the call only. */
    void (*event)(void *arg, const struct sbx_sandbox *sb, enum sbx_topic topic,
                  const char *payload, size_t len);
    /* The sandbox is gone (freed or detached). */
    void (*gone)(void *arg, const char *id);
    void *arg;
};

/* Installs tap (NULL removes it); the tap must outlive its installation. */
void sbx_stats_set_tap(const struct sbx_tap *tap);

/* Hooks for core/subs.c. */
int sbx_stats_tap_wants(const struct sbx_sandbox *sb, enum sbx_topic topic);
void sbx_stats_tap_event(const struct sbx_sandbox *sb, enum sbx_topic topic, const char *payload,
                         size_t len);
void sbx_stats_tap_gone(const char *id);

#endif
