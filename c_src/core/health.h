/* Health checks at create: probe until healthy or until the check's deadline. */
#ifndef SBX_CORE_HEALTH_H
#define SBX_CORE_HEALTH_H

#include <stdint.h>

struct sbx_sandbox;

/* Told once: healthy (1) or deadline passed / sandbox gone (0). */
typedef void (*sbx_health_fn)(struct sbx_sandbox *sb, uint64_t key, int healthy);

/* How long create waits for a container's BEAM node (docker `beam`, no health_check) to
 * answer, and how often it asks. */
#define SBX_HEALTH_BEAM_MS 30000
#define SBX_HEALTH_BEAM_INTERVAL_MS 250

/* An http probe reads at most this much while looking for its status line. */
#define SBX_HEALTH_HTTP_MAX 4096

/* 1 if create must wait for sb to be healthy: a health_check, or a container's BEAM node
 * (docker `beam`) when no health_check is given. */
int sbx_health_wanted(const struct sbx_sandbox *sb);

/* Starts probing sb per sb->cfg.health (or its BEAM node, see sbx_health_wanted). 0, or -1 (nothing started). */
int sbx_health_start(struct sbx_sandbox *sb, uint64_t key, sbx_health_fn done);

/* The sandbox is going away: a probe under way is told unhealthy now. */
void sbx_health_abort(struct sbx_sandbox *sb);

/* Stops probing without telling anyone (the caller left). */
void sbx_health_cancel(struct sbx_sandbox *sb);

#endif
