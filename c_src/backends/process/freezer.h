/* The freezer of a process sandbox's cgroup: pause(Id) and resume(Id) for process and
 * beam_node sandboxes, without blocking the loop.
 *
 * v2: `cgroup.freeze` in the sandbox's unified group, done once `cgroup.events` says
 * `frozen 1` (inotify on that file, which the kernel touches when it changes, and a
 * polling timer as a backstop). v1: `freezer.state` in its freezer group, done once it
 * reads FROZEN (polled: the v1 file gives no notification). Thawing takes effect at the
 * write and is answered at once. */
#ifndef SBX_BACKENDS_PROCESS_FREEZER_H
#define SBX_BACKENDS_PROCESS_FREEZER_H

#include <stdint.h>

#include "backends/backend.h"
#include "backends/process/cgroup.h"

struct sbx_sandbox;
struct event_base;

/* How long a freeze may take to settle (a task in uninterruptible sleep holds it in
 * FREEZING) before it is undone and answered {error, timeout}. */
#define SBX_FREEZE_TIMEOUT_MS 15000

/* Freezes (freeze 1) or thaws (0) cg, the group of sb's workload (NULL or without a
 * freezer: {backend, Type, "no freezer cgroup ..."}), waiting on base's loop; sb is only
 * handed back to done (and its id logged). 0, and done(sb, key, `ok`, ...) once
 * the group is frozen (later) or thawed (inside this call), or done with an error: the
 * freeze did not settle in SBX_FREEZE_TIMEOUT_MS (`timeout`, thawed again) or the group
 * was thawed by someone else meanwhile (a stop). -1 with *err when the freezer cannot be
 * written (nothing changed). An operation still under way for sb is answered with an
 * error first (this one supersedes it). cg is copied. */
int sbx_freezer_set(struct sbx_sandbox *sb, struct event_base *base, const struct sbx_cgroup *cg,
                    int freeze, uint64_t key, sbx_value_done_fn done, struct sbx_err *err);

/* Whether cg is frozen now (v1 FROZEN or FREEZING, v2 cgroup.freeze 1): 1 or 0, or -1
 * when cg is NULL, has no freezer or cannot be read. Changes nothing. */
int sbx_freezer_frozen(const struct sbx_cgroup *cg);

/* Drops sb's operation under way, if any, without calling its done (release, detach). */
void sbx_freezer_forget(struct sbx_sandbox *sb);

#endif
