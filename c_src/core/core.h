/* The sandbox core: registry, state directory, subscriptions, and the node process
 * that monitors subscribers and owners on other nodes. One per daemon. */
#ifndef SBX_CORE_CORE_H
#define SBX_CORE_CORE_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/process/cgroup.h"
#include "core/config.h"
#include "core/ident.h"
#include "dist/proc.h"

struct sbx_node;
struct sbx_sandbox;
struct sbx_sub;
struct event_base;
struct event;

#define SBX_ID_BUCKETS 1024

struct sbx_core_config {
    const char *state_dir;
    int shutdown_destroy;       /* --shutdown-policy destroy */
    size_t log_max_bytes;       /* per sandbox, default 1 MiB */
    size_t max_sandboxes;       /* default 10000 */
    size_t max_subscribers;     /* default 10000 */
    int stop_grace_ms;          /* SIGTERM -> SIGKILL, default 5000 */
    int dynamic_uids;           /* 1: a uid per sandbox when root (--uid-range off: 0) */
    uid_t uid_first, uid_last;  /* --uid-range, default 61184-65519 */
};

struct sbx_core {
    struct sbx_node *node;
    struct event_base *base;
    char state_dir[256];
    int shutdown_destroy;
    size_t log_max_bytes;
    size_t max_sandboxes;
    size_t max_subscribers;
    int stop_grace_ms;
    struct sbx_sandbox *first, *last;
    struct sbx_sandbox *buckets[SBX_ID_BUCKETS];
    long fds_at_start;          /* descriptors open before any sandbox (info's estimate) */
    size_t count;
    struct sbx_cg_host cg;
    struct sbx_uid_pool uids;   /* dynamic uids (enabled when root) */
    struct sbx_proc *proc;      /* monitors subscribers and owners */
    struct sbx_sub *subs;
    size_t sub_count;
    uint64_t events_dropped;
    struct event *sigchld;
};

/* Sets up the core: state directory, cgroup detection, its monitoring process, SIGCHLD
 * handling; adopts the sandboxes journalled by an earlier run. 0, or -1 with *why. */
int sbx_core_start(struct sbx_core *core, struct sbx_node *node,
                   const struct sbx_core_config *cfg, const char **why);

/* Clean stop: per the shutdown policy, leaves sandboxes running (journalled, adopted at
 * the next start) or destroys them; frees everything. */
void sbx_core_stop(struct sbx_core *core);

/* The daemon's single core (set by sbx_core_start), for API handlers. */
struct sbx_core *sbx_core_get(void);

/* Monitors remote pid `who` from the core's process with a fresh reference, written
 * (encoded, no version) to ref_out. 0 or -1 (pid's node not connected). */
int sbx_core_monitor(struct sbx_core *core, const struct sbx_rpid *who, ei_x_buff *ref_out);
/* Removes such a monitor (DEMONITOR_P). */
void sbx_core_demonitor(struct sbx_core *core, const struct sbx_rpid *who, const char *ref,
                        size_t ref_len);

#endif
