/* Sandboxes: the registry, the status state machine and what every backend shares.
 *
 * A sandbox is owned by the core (struct sbx_core) from create until destroy has
 * finished. Backends hold their own state in sb->bstate and report what happens to
 * the workload through sbx_sandbox_set_status(); the core records it, journals it and
 * tells subscribers. */
#ifndef SBX_CORE_SANDBOX_H
#define SBX_CORE_SANDBOX_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/config.h"
#include "core/ident.h"
#include "dist/proc.h"

struct sbx_node;
struct sbx_core;
struct sbx_logbuf;
struct sbx_backend;
struct sbx_pause;
struct event;

enum sbx_status {
    SBX_ST_STARTING = 0,
    SBX_ST_RUNNING,
    SBX_ST_PAUSED, /* frozen by pause(Id) (core/pause.h); ttl keeps counting */
    SBX_ST_STOPPING,
    SBX_ST_STOPPED,
    SBX_ST_EXITED,
    SBX_ST_ERROR
};

const char *sbx_status_name(enum sbx_status st);
const char *sbx_type_name(enum sbx_type t);

/* How the workload last ended: nothing yet, an exit code, or a signal. */
struct sbx_exit {
    int kind; /* 0 none, 1 exit code, 2 signal */
    int value;
};

struct sbx_sandbox {
    struct sbx_sandbox *next, *prev; /* core->sandboxes, in creation order */
    struct sbx_sandbox *hnext;       /* id hash chain */
    struct sbx_core *core;
    char id[SBX_ID_MAX + 1];
    struct sbx_config cfg;
    enum sbx_status status;
    int64_t created_at, started_at; /* wall ms; started_at 0 = never */
    struct sbx_exit exit;
    int restart_count;
    int destroying;                 /* destroy under way: no restarts, no new work */
    int stop_requested;             /* the workload ends because we asked */
    enum sbx_status stop_to;        /* status once it has ended (stopped) */
    const char *stop_reason;        /* atom: stopped, destroyed, ttl, owner_down */
    int restart_after_stop;         /* restart(Id): start again once stopped */
    struct event *restart_timer;    /* restart policy backoff */
    int64_t owner_ref_len;
    char owner_ref[64];             /* our monitor on the owner */
    char dir[512];                  /* its folder in the state directory */
    char workspace[600];
    struct sbx_logbuf *logs;
    const struct sbx_backend *backend;
    void *bstate;                   /* the backend's own */
    struct sbx_ident ident;         /* who the workload runs as (fixed from create to destroy) */
    struct event *ttl_timer;
    struct event *metrics_timer;
    int metrics_stretched;      /* its pending timer has the tap's longer interval */
    int64_t metrics_last_ns;        /* cpu time at the last sample, for cpu_percent */
    int64_t metrics_last_mono;
    double cpu_percent;
    /* The owner process (config owner): monitored; its death destroys the sandbox. */
    struct sbx_rpid owner;
    int has_owner;
    /* Calls waiting for this sandbox to reach a state (create, start, stop, destroy). */
    struct sbx_waiter *waiters;
    uint64_t processes_hash;        /* of the last processes event, to send only changes */
    struct sbx_err start_err;       /* why the last start failed (status error) */
    struct sbx_pause *pause;        /* a pause or resume under way (core/pause.h), or NULL */
};

#define SBX_WAIT_GONE (1u << 8) /* the sandbox was destroyed */

/* Metrics samples a second, over all sandboxes, taken for the event tap alone (the HTTP
 * side): past this many sandboxes each one is sampled less often than its interval. An
 * Erlang subscriber to metrics still gets the sandbox's own interval. */
#define SBX_TAP_SAMPLES_PER_S 250

/* Registry. */
struct sbx_sandbox *sbx_sandbox_find(struct sbx_core *core, const char *id);
size_t sbx_sandbox_count(const struct sbx_core *core);

/* Creates and registers a sandbox in status starting (its folder, log file and
 * workspace made). Takes ownership of *cfg (zeroed on return either way). NULL on
 * failure with *err set (field "id" for already_exists is reported by the caller). */
struct sbx_sandbox *sbx_sandbox_new(struct sbx_core *core, const char *id,
                                    struct sbx_config *cfg, const char **why);

/* As sbx_sandbox_new, for adoption: the workload keeps the journalled ident `was` (NULL:
 * none journalled; a dynamic uid is then picked as for a new sandbox). */
struct sbx_sandbox *sbx_sandbox_new_as(struct sbx_core *core, const char *id,
                                       struct sbx_config *cfg, const struct sbx_ident *was,
                                       const char **why);

/* Gives the file open at fd to the sandbox's workload uid (see sbx_ident_own_fd): the one
 * step for every file sandboxd makes for a sandbox (workspace, HOME, files copied in). */
int sbx_sandbox_own_fd(const struct sbx_sandbox *sb, int fd);

/* Unregisters and frees a sandbox whose workload is gone, removing its folder. */
void sbx_sandbox_free(struct sbx_sandbox *sb);

/* Unregisters and frees the in-memory sandbox only: its workload, folder and journal
 * record stay for the next start of sandboxd to adopt. */
void sbx_sandbox_detach(struct sbx_sandbox *sb);

/* Moves to status `to`, with a reason term (encoded, no version byte; NULL = `normal`).
 * Journals the change and sends a status event to subscribers. Wakes waiters whose
 * condition now holds. Idempotent when the status does not change (no event). */
void sbx_sandbox_set_status(struct sbx_sandbox *sb, enum sbx_status to, const char *reason,
                            size_t reason_len);
/* The same with a bare atom as the reason. */
void sbx_sandbox_set_status_atom(struct sbx_sandbox *sb, enum sbx_status to, const char *atom);

/* Writes the sandbox's record to the journal. */
void sbx_sandbox_journal(struct sbx_sandbox *sb);

/* Encodes the sandbox map of API.md into x. */
void sbx_sandbox_encode(const struct sbx_sandbox *sb, ei_x_buff *x);

/* Waiting for a sandbox: a pending call (named by its key) that is answered when the
 * sandbox reaches a status in `mask` (bit per enum sbx_status), or fails. */
typedef void (*sbx_waiter_fn)(struct sbx_sandbox *sb, uint64_t key, int ok);
struct sbx_waiter {
    struct sbx_waiter *next;
    unsigned mask;
    uint64_t key;
    sbx_waiter_fn fn;
};
int sbx_sandbox_wait(struct sbx_sandbox *sb, unsigned mask, uint64_t key, sbx_waiter_fn fn);
/* Fails every waiter (ok = 0), e.g. when the sandbox is destroyed meanwhile. */
void sbx_sandbox_fail_waiters(struct sbx_sandbox *sb);

/* Backend reports: output read from the workload (logs + log events)... */
void sbx_sandbox_output(struct sbx_sandbox *sb, int stream, const char *data, size_t len);

/* ...and the workload having ended with everything of it gone. The core decides the
 * new status (stopped/exited, with its reason) and whether to restart. */
void sbx_sandbox_ended(struct sbx_sandbox *sb, const struct sbx_exit *ex, int oom);

/* Starts the workload (create, start, restarts). 0 (running), SBX_START_PENDING (status
 * starting until the backend calls sbx_sandbox_started), or -1 with *err (status error,
 * the error also kept in sb->start_err). */
int sbx_sandbox_start(struct sbx_sandbox *sb, struct sbx_err *err);

/* Backend report ending a SBX_START_PENDING start: running (err NULL), or error with
 * err (kept in sb->start_err), once whatever the start made is gone again. Waiters for
 * running are told. */
void sbx_sandbox_started(struct sbx_sandbox *sb, const struct sbx_err *err);

/* Asks the workload to stop; status stopping, then `to` with reason (an atom) once it
 * has ended. */
void sbx_sandbox_stop(struct sbx_sandbox *sb, const char *reason);

/* Destroys: stops the workload, then frees everything; waiters for SBX_WAIT_GONE are
 * told. reason (atom) goes into the last status event. */
void sbx_sandbox_destroy(struct sbx_sandbox *sb, const char *reason);

/* (Re)arms the metrics timer according to subscriptions. */
void sbx_sandbox_metrics_timer(struct sbx_sandbox *sb);

#endif
