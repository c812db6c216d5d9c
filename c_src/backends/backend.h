/* One table of operations per sandbox type. The core calls these; a backend reports
 * back through sbx_sandbox_set_status() (core/sandbox.h) and the completion callbacks
 * below. Operations that take time never block: they answer through a callback. */
#ifndef SBX_BACKENDS_BACKEND_H
#define SBX_BACKENDS_BACKEND_H

#include <ei.h>
#include <netinet/in.h>
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

/* Answer of an asynchronous query (metrics, processes, copy): term is the encoded value
 * (no version byte) on success, or NULL with err set. sb is alive during the call: a
 * backend never calls it after release() or detach() of that sandbox. key is the one the
 * query was started with (0 for the core's own metrics timer). */
typedef void (*sbx_value_done_fn)(struct sbx_sandbox *sb, uint64_t key, const char *term,
                                  size_t len, const struct sbx_err *err);

/* A BEAM node a sandbox hosts (beam_node, or a container with `beam`), for remote_call,
 * get_state and tracing. */
struct sbx_beam_target {
    char node[256];   /* full node name, name@host */
    char cookie[256]; /* its cookie */
};

/* sbx_backend.start's answers. */
#define SBX_START_DONE 0     /* running now */
#define SBX_START_PENDING 1  /* the backend calls sbx_sandbox_started() later */

struct sbx_backend {
    const char *name;
    enum sbx_type type;
    /* 1 if the workload runs as host processes: it gets a uid of its own (core/ident.h)
     * and its workspace is given to that uid. */
    int local_uid;
    /* The type's own config keys (core/config.h), decoded by this backend. */
    const struct sbx_config_schema *config;
    /* 1 if usable; else 0 with *why (static). */
    int (*available)(struct sbx_core *core, const char **why);
    /* Starts the workload. SBX_START_DONE when it runs now; SBX_START_PENDING when it is
     * coming up (the backend calls sbx_sandbox_started(sb, NULL) once it runs, or with an
     * error once whatever it made is gone again); -1 with *err and nothing left running. */
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
    /* Optional asynchronous forms, used instead of metrics/processes when set: 0 and
     * done(sb, key, ...) later (never inside this call), or -1 with *err. A query still
     * under way at release()/detach() is dropped without calling done. */
    int (*metrics_async)(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                         struct sbx_err *err);
    int (*processes_async)(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                           struct sbx_err *err);
    /* Optional: copy_to / copy_from through the backend (NULL: the core reads and writes
     * the workspace on the host). path is as the caller gave it (checked: no NUL, no ".."
     * component, at most 1024 bytes; absolute paths only reach a backend with these).
     * copy_to answers done with term `ok`; copy_from with the file's binary. Same rules as
     * the async queries; exec_cancel(sb, key) abandons one whose caller left. */
    int (*copy_to)(struct sbx_sandbox *sb, const char *path, const char *data, size_t len,
                   uint64_t key, sbx_value_done_fn done, struct sbx_err *err);
    int (*copy_from)(struct sbx_sandbox *sb, const char *path, uint64_t key,
                     sbx_value_done_fn done, struct sbx_err *err);
    /* Optional: during destroy, once the workload has ended, removes what the backend made
     * outside sandboxd (a container and its anonymous volumes), then calls done(sb)
     * (possibly inside this call). destroy answers only after done. */
    void (*remove)(struct sbx_sandbox *sb, void (*done)(struct sbx_sandbox *sb));
    /* Optional: 0 and *t filled when the sandbox hosts a BEAM node, else -1. */
    int (*beam_target)(struct sbx_sandbox *sb, struct sbx_beam_target *t);
    /* Appends the shell description map to x. */
    int (*shell)(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err);
    /* Re-attaches to a workload journalled by an earlier run (record: the decoded
     * backend part). 1 if it is still running and was adopted, 0 if it is gone. */
    int (*adopt)(struct sbx_sandbox *sb, const char *buf, int idx);
    /* Appends the backend's own part of the journal record (a term). */
    void (*journal)(const struct sbx_sandbox *sb, ei_x_buff *x);
    /* The backend's handle for the sandbox map's `ref` (appends a term). */
    void (*ref)(const struct sbx_sandbox *sb, ei_x_buff *x);
    /* Optional: where a tcp/http health probe for `port` (the config's, a host port)
     * connects: 0 with *sa filled, or -1 for 127.0.0.1:port. Docker answers the
     * container's own address, since its userland proxy accepts on a published host
     * port even when nothing listens inside. */
    int (*probe_addr)(const struct sbx_sandbox *sb, int port, struct sockaddr_in *sa);
    /* Optional: the sandbox map's `ports` (appends a list); NULL: []. */
    void (*ports)(const struct sbx_sandbox *sb, ei_x_buff *x);
    /* Optional: freezes (pause) or thaws (resume) every process of the workload without
     * ending it (freezer cgroup, the Engine's pause, QMP stop/cont). 0 and done(sb, key,
     * "ok" encoded, ...) later, possibly inside this call, or done with err; -1 with *err
     * when it cannot even start. NULL: the type cannot pause ({error, unsupported}). The
     * core owns the status (`paused`) and its events; a backend only freezes and thaws.
     * Same rules as the async queries for release()/detach() while one is under way. */
    int (*pause)(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                 struct sbx_err *err);
    int (*resume)(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                  struct sbx_err *err);
    /* Optional: whether the workload is frozen now, asked once it was adopted: 1 frozen,
     * 0 not, -1 not known yet (the journalled status stands until the backend reports
     * what it finds through sbx_sandbox_pause_seen, core/pause.h). NULL: as -1. */
    int (*paused)(struct sbx_sandbox *sb);
};

const struct sbx_backend *sbx_backend_for(enum sbx_type type);

extern const struct sbx_backend sbx_backend_process;
extern const struct sbx_backend sbx_backend_docker;
extern const struct sbx_backend sbx_backend_beam;
extern const struct sbx_backend sbx_backend_vm;

#endif
