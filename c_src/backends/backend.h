/* One table of operations per sandbox type. The core calls these; a backend reports
 * back through sbx_sandbox_set_status() (core/sandbox.h) and the completion callbacks
 * below. Operations that take time never block: they answer through a callback. */
#ifndef SBX_BACKENDS_BACKEND_H
#define SBX_BACKENDS_BACKEND_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"

struct sbx_core;
struct sbx_sandbox;

/* An error for {error, Reason}: reason_atom alone (timeout, unsupported, ...) or
 * {backend, Backend, Detail} when detail is set (a binary message). */
struct sbx_err {
    const char *reason_atom; /* "backend", "unavailable", "timeout", ... */
    char detail[256];
};

/* Result of exec: owned by the callback's caller for the duration of the call. */
struct sbx_exec_result {
    int exit_code;        /* -1 when killed by a signal: see signal */
    int signal;
    const char *stdout_data;
    size_t stdout_len;
    const char *stderr_data;
    size_t stderr_len;
    int64_t duration_ms;
    int truncated;
    int timed_out;
};

typedef void (*sbx_exec_done_fn)(uint64_t key, const struct sbx_exec_result *res,
                                 const struct sbx_err *err);

struct sbx_backend {
    const char *name;
    enum sbx_type type;
    /* 1 if usable; else 0 with *why (static). */
    int (*available)(struct sbx_core *core, const char **why);
    /* Starts the workload; status goes running (or error) through set_status. 0, or -1
     * with *err and nothing left running. */
    int (*start)(struct sbx_sandbox *sb, struct sbx_err *err);
    /* Stops the workload: SIGTERM, SIGKILL after grace_ms; sets status `to` (stopped,
     * or the status the caller asked) with reason when everything is gone. */
    void (*stop)(struct sbx_sandbox *sb, int grace_ms);
    /* 1 while any process of the sandbox is alive. */
    int (*alive)(struct sbx_sandbox *sb);
    /* Frees the backend's state and what it made outside the sandbox folder (cgroup);
     * kills what is still alive. Pending execs are answered with an error. */
    void (*release)(struct sbx_sandbox *sb);
    /* Frees the backend's in-memory state only, leaving the workload running (clean stop
     * of sandboxd with the keep policy: the next start adopts it). */
    void (*detach)(struct sbx_sandbox *sb);
    /* Runs a command in the sandbox; done(key, ...) later. 0, or -1 with *err. */
    int (*exec)(struct sbx_sandbox *sb, const struct sbx_strv *cmd,
                const struct sbx_exec_opts *opts, uint64_t key, sbx_exec_done_fn done,
                struct sbx_err *err);
    /* Cancels the exec started with key (the caller left): kill it, never call done. */
    void (*exec_cancel)(struct sbx_sandbox *sb, uint64_t key);
    /* Appends the metrics map / processes list to x. 0 or -1 with *err. */
    int (*metrics)(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err);
    int (*processes)(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err);
    /* Appends the shell description map to x. */
    int (*shell)(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err);
    /* Re-attaches to a workload journalled by an earlier run (record: the decoded
     * backend part). 1 if it is still running and was adopted, 0 if it is gone. */
    int (*adopt)(struct sbx_sandbox *sb, const char *buf, int idx);
    /* Appends the backend's own part of the journal record (a term). */
    void (*journal)(const struct sbx_sandbox *sb, ei_x_buff *x);
    /* The backend's handle for the sandbox map's `ref` (appends a term). */
    void (*ref)(const struct sbx_sandbox *sb, ei_x_buff *x);
};

const struct sbx_backend *sbx_backend_for(enum sbx_type type);

extern const struct sbx_backend sbx_backend_process;

#endif
