/* pause(Id) and resume(Id): the core's part, the same for every type.
 *
 * The core owns status `paused` (journalled, with status events running -> paused ->
 * running, reasons `paused`, `resumed`, or `external` for a change the backend saw made
 * by someone else); a backend only freezes and thaws (its pause/resume operations,
 * backends/backend.h). One pause or resume is under way per sandbox at a time
 * (sb->pause). While paused, or while either is under way, calls that need the workload
 * answer {error, paused} (sbx_pause_blocks). The ttl keeps counting; stop and destroy
 * thaw first (sbx_pause_before_stop). */
#ifndef SBX_CORE_PAUSE_H
#define SBX_CORE_PAUSE_H

#include <stdint.h>

#include "backends/backend.h"

struct sbx_sandbox;

/* How a pause or resume ended for the caller named key: err NULL for ok, else the error
 * to answer. sb is alive during the call. */
typedef void (*sbx_pause_done_fn)(struct sbx_sandbox *sb, uint64_t key, const struct sbx_err *err);

/* Starts pausing (resume 0) or resuming (resume 1) sb for the caller named key. Refuses
 * with -1 and *err: `unsupported` (the type cannot pause), `paused` (pause of a paused
 * sandbox, or one with a pause or resume under way), `not_running` (pause of a sandbox
 * that is not running), `not_paused` (resume of one that is not paused, or with a pause
 * or resume under way), or the backend's error when it cannot even start; nothing
 * changes then. 1: done already (the status changed inside this call). 0: under way,
 * done(sb, key, err) later, never inside this call; a sandbox freed meanwhile answers
 * `not_found` (sbx_pause_gone). */
int sbx_sandbox_pause(struct sbx_sandbox *sb, int resume, uint64_t key, sbx_pause_done_fn done,
                      struct sbx_err *err);

/* 1 if calls that need the workload must answer {error, paused}: status paused, or a
 * pause or resume under way. */
int sbx_pause_blocks(const struct sbx_sandbox *sb);

/* Stop is about to end the workload: a paused sandbox is thawed first (the backend's
 * resume, its answer ignored), so that the workload sees its SIGTERM and stop's grace
 * means what it says. Changes no status. */
void sbx_pause_before_stop(struct sbx_sandbox *sb);

/* A start (create, start, restart, the restart policy) is about to run the workload: a
 * freezer the backend still finds frozen (a workload that ended while paused, or a pause
 * that raced its end) is thawed first, so that the new workload does not start frozen. */
void sbx_pause_before_start(struct sbx_sandbox *sb);

/* The backend saw the workload frozen (1) or thawed (0) by someone else (`docker pause`
 * outside sandboxd): status paused or running with reason `external`. Ignored while a
 * pause or resume of ours is under way, and unless the status is running or paused. */
void sbx_sandbox_pause_seen(struct sbx_sandbox *sb, int frozen);

/* The status an adopted workload takes: paused when the backend finds it frozen (or
 * cannot tell yet and the journal said `paused`), else running. */
int sbx_pause_adopted_status(struct sbx_sandbox *sb, int journalled_paused);

/* sb is being freed or detached (after the backend's release or detach, which drop
 * their pending answers): a pause or resume under way is answered `not_found`. */
void sbx_pause_gone(struct sbx_sandbox *sb);

#endif
