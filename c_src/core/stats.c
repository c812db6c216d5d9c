/* Daemon-wide counters and the local event tap (see stats.h). */
#include "core/stats.h"

#include <string.h>

struct sbx_stats sbx_stats;

const double sbx_rpc_bucket_le[SBX_RPC_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                                   0.005,  0.01,    0.025,  0.05,  0.1,
                                                   0.25,   0.5,     1,      5};

static const struct sbx_tap *tap;

/* See stats.h. Names are matched by content (a function of several arities shares one
 * row); a table that is full counts under its last row. */
void sbx_stats_rpc(const char *name, enum sbx_rpc_result result, int64_t ns) {
    struct sbx_rpc_fn_stats *row = &sbx_stats.fns[SBX_RPC_MAX_FUNCS - 1];
    if (name == NULL)
        name = "unknown";
    for (size_t i = 0; i < SBX_RPC_MAX_FUNCS; i++) {
        struct sbx_rpc_fn_stats *f = &sbx_stats.fns[i];
        if (f->name == NULL)
            f->name = name;
        if (strcmp(f->name, name) == 0) {
            row = f;
            break;
        }
    }
    row->calls[result]++;
    double s = ns > 0 ? (double)ns / 1e9 : 0.0;
    size_t b = 0;
    while (b < SBX_RPC_BUCKETS && s > sbx_rpc_bucket_le[b])
        b++;
    sbx_stats.rpc_buckets[b]++;
    sbx_stats.rpc_count++;
    sbx_stats.rpc_seconds_sum += s;
}

/* See stats.h. */
void sbx_stats_set_tap(const struct sbx_tap *t) { tap = t; }

/* See stats.h. */
int sbx_stats_tap_wants(const struct sbx_sandbox *sb, enum sbx_topic topic) {
    return tap != NULL && tap->wants(tap->arg, sb, topic);
}

/* See stats.h. */
void sbx_stats_tap_event(const struct sbx_sandbox *sb, enum sbx_topic topic, const char *payload,
                         size_t len) {
    if (tap != NULL && tap->wants(tap->arg, sb, topic))
        tap->event(tap->arg, sb, topic, payload, len);
}

/* See stats.h. */
void sbx_stats_tap_gone(const char *id) {
    if (tap != NULL)
        tap->gone(tap->arg, id);
}
