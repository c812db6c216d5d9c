/* The docker backend's entry points for the core (the ops table is in backend.h). */
#ifndef SBX_BACKENDS_DOCKER_DOCKER_H
#define SBX_BACKENDS_DOCKER_DOCKER_H

struct sbx_core;

/* Connects to the engine (DOCKER_HOST ...) and probes it; once it answers, containers
 * labelled with our node are reconciled with the sandboxes adopted from the journal.
 * Called by sbx_core_start after adoption. Never fails: an engine that is down is
 * probed again every second. */
void sbx_docker_init(struct sbx_core *core);

/* Drops every request and frees the engine (sandboxes already released or detached). */
void sbx_docker_stop(struct sbx_core *core);

/* 1 if the engine answers; else 0 with *why (valid until the next loop turn). */
int sbx_docker_available(struct sbx_core *core, const char **why);

#endif
