/* The beam_node backend's internals shared by its files: a process sandbox running `erl`
 * (the process backend does spawn, cgroup, logs, kill and adoption) plus what makes it a
 * node: its name and cookie, the start-up sequence over the distribution, and queries. */
#ifndef SBX_BACKENDS_BEAM_BEAM_H
#define SBX_BACKENDS_BEAM_BEAM_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "rpc/remote.h"

struct sbx_sandbox;
struct event;
struct bquery;

enum bphase {
    BP_IDLE = 0,   /* not started, or ended */
    BP_WAIT_UP,    /* erl spawned: waiting for its epmd entry and a connection */
    BP_CODE_PATHS, /* code:add_pathsa under way */
    BP_APPS,       /* application:ensure_all_started(apps[app_i]) under way */
    BP_RUNNING,
    BP_STOPPING    /* init:stop() sent, waiting for the OS process to end */
};

/* One beam_node sandbox's own state (the process backend keeps sb->bstate). Owned by the
 * list in beam.c from start/adopt until release/detach. */
struct bnode {
    struct bnode *next;
    struct sbx_sandbox *sb;
    uint64_t serial;              /* key for deferred callbacks: never reused */
    struct sbx_beam_target target;
    enum bphase phase;
    size_t app_i;
    int64_t deadline_ms;          /* start-up deadline (mono) */
    struct event *timer;          /* start-up poll, stop grace */
    int64_t last_reds, last_ts;   /* metrics: previous sample for reductions per second */
    struct bquery *queries;       /* metrics/processes/get_state under way */
};

/* The bnode of sb, or NULL; by serial (for callbacks), or NULL once released. */
struct bnode *sbx_beam_of(const struct sbx_sandbox *sb);
struct bnode *sbx_beam_by_serial(uint64_t serial);
/* The first bnode of the list (walk with ->next). */
struct bnode *sbx_beam_list(void);

/* argv/naming (beam_argv.c). */
/* The erl executable: --erl, else $SANDBOXD_ERL, else `erl` on PATH. Writes an absolute
 * path into out; 0, or -1 with *why (static) when none is executable. */
int sbx_beam_find_erl(char *out, size_t cap, const char **why);
/* Set from main's --erl (the string is kept, not copied). */
void sbx_beam_set_erl(const char *path);
/* TLS (beam_tls.c). Set from main's --proto-dist inet_tls (kept, not copied; NULL: plain). */
struct sbx_tls_opts;
void sbx_beam_set_tls(const struct sbx_tls_opts *opts);
/* With TLS set: copies the optfile's certificates, keys and CA files into the node's HOME
 * (0400, the node's user's) with an optfile naming them, and appends -proto_dist inet_tls
 * -ssl_dist_optfile to sb->cfg.cmd. Without: nothing. 0, or -1 with err. */
int sbx_beam_tls_setup(struct sbx_sandbox *sb, struct sbx_err *err);
/* Fills t->node from the config name (default sandbox_<id>; `@` in it: as is; else
 * name@<sandboxd's host>) and t->cookie from the config or 20 random letters. *long_names is
 * set when the host has a dot (-name instead of -sname). 0, or -1 with err. */
int sbx_beam_target_for(const struct sbx_sandbox *sb, const char *self_node,
                        struct sbx_beam_target *t, int *long_names, struct sbx_err *err);
/* The node's HOME, a folder of its own inside the sandbox's folder (<dir>/home), into out:
 * 0, or -1 if it does not fit. Everything that needs the path asks here. */
int sbx_beam_home(const struct sbx_sandbox *sb, char *out, size_t cap);
/* Creates the HOME (0700) if needed and writes cookie to HOME/.erlang.cookie, mode 0400 (erl
 * refuses a cookie file open to group or others), replacing an earlier one. 0, or -1 with
 * err. Whoever changes who owns the sandbox's files must include this one. */
int sbx_beam_write_cookie(const struct sbx_sandbox *sb, const char *cookie, struct sbx_err *err);
/* Replaces sb->cfg.cmd with the erl command line for t (no cookie on it) and sets HOME in
 * sb->cfg.env to sbx_beam_home. 0, or -1 with err. */
int sbx_beam_build_cmd(struct sbx_sandbox *sb, const char *erl, const struct sbx_beam_target *t,
                       int long_names, struct sbx_err *err);
/* 1 if alive (the part before @) is registered with the local epmd, 0 if not, -1 if
 * epmd cannot be asked (blocking, bounded to about a second: local epmd only). */
int sbx_beam_epmd_registered(const char *node_name);

/* Queries (beam_query.c). */
int sbx_beam_metrics_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                           struct sbx_err *err);
int sbx_beam_processes_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                             struct sbx_err *err);
/* Drops the queries whose caller key is key (key 0: all of them), without answering. */
void sbx_beam_queries_cancel(struct bnode *bn, uint64_t key, int all);
/* sbx_beam_helper:F(Args) on t's node (args: an encoded list, no version byte; copied),
 * loading the helper with code:load_binary when the node answers undef. done(key, res)
 * later, exactly once, as for sbx_remote_call (rpc/remote.h), unless cancelled with
 * sbx_beam_helper_cancel(done, key). 0, or -1 (done never runs). */
int sbx_beam_helper_call(const struct sbx_beam_target *t, const char *f, const char *args,
                         size_t args_len, int timeout_ms, sbx_remote_done_fn done, uint64_t key);
size_t sbx_beam_helper_cancel(sbx_remote_done_fn done, uint64_t key);
/* Reads priv/<file> (next to the binary, or $SANDBOXD_PRIV_DIR) into a malloc'd buffer.
 * 0, or -1. Shared with whoever ships other modules in priv/. */
int sbx_beam_priv_file(const char *file, char **buf, size_t *len);

#endif
