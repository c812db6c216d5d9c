/* The beam_node backend: a process sandbox running `erl` (spawn, cgroup, logs, kill and
 * adoption are the process backend's, called through its ops table) plus the node's
 * start-up over the distribution (epmd entry, connection, code paths, apps), a graceful
 * init:stop(), and the journalled name and cookie for reconnecting after a restart. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/beam/beam_config.h"
#include "backends/beam/beam.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "dist/node.h"
#include "rpc/remote.h"
#include "util/clock.h"
#include "util/log.h"

#define PROC (&sbx_backend_process)
#define UP_POLL_MS 100
#define DEFAULT_START_MS 30000
#define STOP_CALL_MS 2000

static struct bnode *all_nodes;
static uint64_t next_serial = 1;

static void up_done(uint64_t key, const struct sbx_remote_result *res);
static void code_done(uint64_t key, const struct sbx_remote_result *res);
static void app_done(uint64_t key, const struct sbx_remote_result *res);
static void noop_done(uint64_t key, const struct sbx_remote_result *res);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

/* See beam.h. Linear: BEAM sandboxes are few. */
struct bnode *sbx_beam_of(const struct sbx_sandbox *sb) {
    for (struct bnode *b = all_nodes; b != NULL; b = b->next)
        if (b->sb == sb)
            return b;
    return NULL;
}

/* See beam.h. */
struct bnode *sbx_beam_by_serial(uint64_t serial) {
    for (struct bnode *b = all_nodes; b != NULL; b = b->next)
        if (b->serial == serial)
            return b;
    return NULL;
}

/* See beam.h. */
struct bnode *sbx_beam_list(void) { return all_nodes; }

/* The node of the daemon (the core's). */
static struct sbx_node *the_node(void) { return sbx_core_get()->node; }

/* A new bnode for sb in the list; NULL when out of memory. */
static struct bnode *bn_new(struct sbx_sandbox *sb) {
    struct bnode *bn = calloc(1, sizeof *bn);
    if (bn == NULL)
        return NULL;
    bn->timer = evtimer_new(sb->core->base, timer_cb, bn);
    if (bn->timer == NULL) {
        free(bn);
        return NULL;
    }
    bn->sb = sb;
    bn->serial = next_serial++;
    bn->next = all_nodes;
    all_nodes = bn;
    return bn;
}

/* Stops everything bn has under way (calls, queries, timer) without answering. */
static void bn_quiet(struct bnode *bn) {
    struct sbx_node *node = the_node();
    sbx_remote_cancel(node, up_done, bn->serial);
    sbx_remote_cancel(node, code_done, bn->serial);
    sbx_remote_cancel(node, app_done, bn->serial);
    sbx_beam_queries_cancel(bn, 0, 1);
    evtimer_del(bn->timer);
}

/* Unlinks and frees bn; forgets its peer cookie (wiped). */
static void bn_free(struct bnode *bn) {
    bn_quiet(bn);
    for (struct bnode **pp = &all_nodes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == bn) {
            *pp = bn->next;
            break;
        }
    }
    if (bn->target.node[0] != '\0')
        sbx_node_forget_peer_cookie(the_node(), bn->target.node);
    event_free(bn->timer);
    memset(&bn->target, 0, sizeof bn->target);
    free(bn);
}

/* Arms bn's timer in ms. */
static void arm(struct bnode *bn, int64_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
    evtimer_add(bn->timer, &tv);
}

/* Start-up failed: kill everything the start made (the process backend's release:
 * SIGKILL, cgroup removed), then tell the core. bn stays (idle) for a later start. A
 * start-up resumed after adoption (the core has the sandbox running, nobody waits) kills
 * the node instead, and its end reaches the core the usual way. */
static void start_fail(struct bnode *bn, const char *reason_atom, const char *detail) {
    struct sbx_sandbox *sb = bn->sb;
    struct sbx_err err = {.reason_atom = reason_atom};
    if (detail != NULL)
        snprintf(err.detail, sizeof err.detail, "%s", detail);
    SBX_WARN("beam_node did not come up", "id=%s reason=%s", sb->id, reason_atom);
    bn_quiet(bn);
    bn->phase = BP_IDLE;
    if (sb->status != SBX_ST_STARTING) {
        PROC->stop(sb, 0);
        return;
    }
    PROC->release(sb);
    sbx_sandbox_started(sb, &err);
}

/* See beam.h. */
int sbx_beam_ended(struct sbx_sandbox *sb, const struct sbx_exit *ex) {
    struct bnode *bn = sbx_beam_of(sb);
    char detail[128];
    if (bn == NULL || (bn->phase != BP_WAIT_UP && bn->phase != BP_CODE_PATHS && bn->phase != BP_APPS))
        return 0;
    if (sb->status != SBX_ST_STARTING) { /* a start-up resumed after adoption */
        bn_quiet(bn);
        bn->phase = BP_IDLE;
        return 0;
    }
    if (ex->kind == 1)
        snprintf(detail, sizeof detail, "the node exited before it came up (exit %d, see logs)",
                 ex->value);
    else if (ex->kind == 2)
        snprintf(detail, sizeof detail, "the node exited before it came up (signal %d)", ex->value);
    else
        snprintf(detail, sizeof detail, "the node exited before it came up");
    start_fail(bn, "backend", detail);
    return 1;
}

/* Milliseconds left before the start-up deadline, at least min. */
static int left_ms(const struct bnode *bn, int min) {
    int64_t left = bn->deadline_ms - sbx_mono_ms();
    return left < min ? min : (int)left;
}

/* Runs M:F(Args) for the start-up sequence; a call that cannot start fails the start. */
static void startup_call(struct bnode *bn, const char *m, const char *f, ei_x_buff *args,
                         sbx_remote_done_fn done, int timeout_ms) {
    if (sbx_remote_call(the_node(), &bn->target, m, f, args->buff, (size_t)args->index, timeout_ms,
                        done, bn->serial) != 0)
        start_fail(bn, "backend", "cannot call the node");
}

/* Next step: start apps[app_i], or report running once all are. */
static void next_app(struct bnode *bn) {
    struct sbx_sandbox *sb = bn->sb;
    if (bn->app_i >= sb->cfg.apps.n) {
        bn->phase = BP_RUNNING;
        evtimer_del(bn->timer);
        SBX_INFO("beam_node up", "id=%s node=%s", sb->id, bn->target.node);
        int resumed = sb->status != SBX_ST_STARTING; /* after adoption: running already */
        sbx_sandbox_started(sb, NULL);
        if (resumed)
            sbx_sandbox_journal(sb); /* no longer pending */
        return;
    }
    ei_x_buff a;
    ei_x_new(&a);
    ei_x_encode_list_header(&a, 1);
    ei_x_encode_atom(&a, sb->cfg.apps.v[bn->app_i]);
    ei_x_encode_empty_list(&a);
    bn->phase = BP_APPS;
    startup_call(bn, "application", "ensure_all_started", &a, app_done, left_ms(bn, 5000));
    ei_x_free(&a);
}

/* code:add_pathsa(CodePaths), or straight to the apps. */
static void add_code_paths(struct bnode *bn) {
    struct sbx_sandbox *sb = bn->sb;
    if (sb->cfg.code_paths.n == 0) {
        next_app(bn);
        return;
    }
    ei_x_buff a;
    ei_x_new(&a);
    ei_x_encode_list_header(&a, 1);
    ei_x_encode_list_header(&a, (long)sb->cfg.code_paths.n);
    for (size_t i = 0; i < sb->cfg.code_paths.n; i++)
        ei_x_encode_string(&a, sb->cfg.code_paths.v[i]);
    ei_x_encode_empty_list(&a);
    ei_x_encode_empty_list(&a);
    bn->phase = BP_CODE_PATHS;
    startup_call(bn, "code", "add_pathsa", &a, code_done, left_ms(bn, 5000));
    ei_x_free(&a);
}

/* Answer to the start-up probe erlang:node(): the node is up and connected. Anything else:
 * probe again soon (the timer checks the deadline and the OS process). */
static void up_done(uint64_t key, const struct sbx_remote_result *res) {
    struct bnode *bn = sbx_beam_by_serial(key);
    if (bn == NULL || bn->phase != BP_WAIT_UP)
        return;
    if (res->kind == SBX_REMOTE_VALUE) {
        add_code_paths(bn);
        return;
    }
    arm(bn, UP_POLL_MS);
}

/* A remote outcome as text for an error detail ("throw: Term" ...), into out. */
static void outcome_text(const struct sbx_remote_result *res, const char *what, char *out,
                         size_t cap) {
    char *s = NULL;
    int idx = 0;
    if (res->term != NULL)
        ei_s_print_term(&s, res->term, &idx);
    switch (res->kind) {
    case SBX_REMOTE_VALUE: snprintf(out, cap, "%s: %s", what, s != NULL ? s : "?"); break;
    case SBX_REMOTE_EXCEPTION:
        snprintf(out, cap, "%s: %s %s", what, res->cls, s != NULL ? s : "?");
        break;
    default: snprintf(out, cap, "%s: %s", what, res->why != NULL ? res->why : "failed"); break;
    }
    free(s);
}

/* code:add_pathsa answered: ok (or true on old releases) moves on to the apps. */
static void code_done(uint64_t key, const struct sbx_remote_result *res) {
    struct bnode *bn = sbx_beam_by_serial(key);
    char detail[256];
    if (bn == NULL || bn->phase != BP_CODE_PATHS)
        return;
    if (res->kind == SBX_REMOTE_VALUE) {
        next_app(bn);
        return;
    }
    if (res->kind == SBX_REMOTE_TIMEOUT) {
        start_fail(bn, "timeout", NULL);
        return;
    }
    outcome_text(res, "code:add_pathsa failed", detail, sizeof detail);
    start_fail(bn, "backend", detail);
}

/* application:ensure_all_started answered: {ok, _} starts the next app; {error, R}
 * fails the start with R in the detail. */
static void app_done(uint64_t key, const struct sbx_remote_result *res) {
    struct bnode *bn = sbx_beam_by_serial(key);
    char what[300], detail[256];
    int idx = 0, arity;
    char atom[MAXATOMLEN_UTF8];
    if (bn == NULL || bn->phase != BP_APPS)
        return;
    if (res->kind == SBX_REMOTE_VALUE && ei_decode_tuple_header(res->term, &idx, &arity) == 0 &&
        arity == 2 && ei_decode_atom(res->term, &idx, atom) == 0 && strcmp(atom, "ok") == 0) {
        bn->app_i++;
        next_app(bn);
        return;
    }
    if (res->kind == SBX_REMOTE_TIMEOUT) {
        start_fail(bn, "timeout", NULL);
        return;
    }
    snprintf(what, sizeof what, "cannot start app %s", bn->sb->cfg.apps.v[bn->app_i]);
    outcome_text(res, what, detail, sizeof detail);
    start_fail(bn, "backend", detail);
}

/* Answers nobody waits for (init:stop, reconnect after adoption). */
static void noop_done(uint64_t key, const struct sbx_remote_result *res) {
    (void)key;
    (void)res;
}

/* bn's timer: while waiting for the node, checks the OS process and the deadline and
 * probes; while stopping, the grace period is over: the process backend kills. */
static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    struct bnode *bn = arg;
    struct sbx_sandbox *sb = bn->sb;
    (void)fd;
    (void)what;
    if (bn->phase == BP_STOPPING) {
        bn->phase = BP_IDLE;
        if (PROC->alive(sb))
            PROC->stop(sb, 0);
        return;
    }
    if (bn->phase != BP_WAIT_UP)
        return;
    if (!PROC->alive(sb)) {
        start_fail(bn, "backend", "the node exited before it came up (see logs)");
        return;
    }
    if (sbx_mono_ms() >= bn->deadline_ms) {
        start_fail(bn, "timeout", NULL);
        return;
    }
    ei_x_buff a;
    ei_x_new(&a);
    ei_x_encode_empty_list(&a);
    int timeout = left_ms(bn, 100) < 2000 ? left_ms(bn, 100) : 2000;
    if (sbx_remote_call(the_node(), &bn->target, "erlang", "node", a.buff, (size_t)a.index,
                        timeout, up_done, bn->serial) != 0)
        arm(bn, UP_POLL_MS);
    ei_x_free(&a);
}

/* Backend start: refuses a name already in epmd, spawns erl through the process backend,
 * then the start-up goes on from the loop (SBX_START_PENDING). */
static int bm_start(struct sbx_sandbox *sb, struct sbx_err *err) {
    char erl[1024];
    const char *why = NULL;
    struct bnode *bn = sbx_beam_of(sb);
    struct sbx_beam_target t;
    int long_names = 0;

    err->reason_atom = "backend";
    if (sbx_beam_find_erl(erl, sizeof erl, &why) != 0) {
        snprintf(err->detail, sizeof err->detail, "%s", why);
        return -1;
    }
    if (sbx_beam_target_for(sb, the_node()->name, &t, &long_names, err) != 0)
        return -1;
    if (sbx_beam_epmd_registered(t.node) == 1) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "name in use");
        return -1;
    }
    if (sbx_beam_build_cmd(sb, erl, &t, long_names, err) != 0 ||
        sbx_beam_write_cookie(sb, t.cookie, err) != 0 || sbx_beam_tls_setup(sb, err) != 0)
        return -1;
    if (bn == NULL && (bn = bn_new(sb)) == NULL) {
        snprintf(err->detail, sizeof err->detail, "out of memory");
        return -1;
    }
    bn_quiet(bn);
    if (PROC->start(sb, err) != 0)
        return -1;
    bn->target = t;
    memset(&t, 0, sizeof t);
    sbx_node_set_peer_cookie(the_node(), bn->target.node, bn->target.cookie);
    bn->phase = BP_WAIT_UP;
    bn->app_i = 0;
    bn->last_ts = 0;
    int ms = sb->cfg.health.timeout_ms > 0 ? sb->cfg.health.timeout_ms : DEFAULT_START_MS;
    bn->deadline_ms = sbx_mono_ms() + ms;
    arm(bn, UP_POLL_MS);
    /* Journal the node's name and cookie now: a sandboxd killed while the node comes up
     * can still reach it after a restart. */
    sbx_sandbox_journal(sb);
    return SBX_START_PENDING;
}

/* Backend stop: a running node gets init:stop() and grace_ms to end, then the process
 * backend kills; a node still starting (or grace 0) goes to the process backend at once. */
static void bm_stop(struct sbx_sandbox *sb, int grace_ms) {
    struct bnode *bn = sbx_beam_of(sb);
    if (bn == NULL || bn->phase != BP_RUNNING || grace_ms <= 0) {
        if (bn != NULL) {
            bn_quiet(bn);
            bn->phase = BP_IDLE;
        }
        PROC->stop(sb, grace_ms);
        return;
    }
    ei_x_buff a;
    ei_x_new(&a);
    ei_x_encode_empty_list(&a);
    bn->phase = BP_STOPPING;
    if (sbx_remote_call(the_node(), &bn->target, "init", "stop", a.buff, (size_t)a.index,
                        STOP_CALL_MS, noop_done, bn->serial) == 0) {
        arm(bn, grace_ms);
    } else {
        bn->phase = BP_IDLE;
        PROC->stop(sb, grace_ms);
    }
    ei_x_free(&a);
}

/* Backend alive: the OS process (the process backend's view). */
static int bm_alive(struct sbx_sandbox *sb) { return PROC->alive(sb); }

/* Backend release: our state first (calls cancelled, cookie forgotten), then the process
 * backend kills and frees its own. */
static void bm_release(struct sbx_sandbox *sb) {
    struct bnode *bn = sbx_beam_of(sb);
    if (bn != NULL) {
        sbx_remote_cancel(the_node(), noop_done, bn->serial);
        bn_free(bn);
    }
    PROC->release(sb);
}

/* Backend detach: frees our state, leaves the node running (adopted next time). */
static void bm_detach(struct sbx_sandbox *sb) {
    struct bnode *bn = sbx_beam_of(sb);
    if (bn != NULL) {
        sbx_remote_cancel(the_node(), noop_done, bn->serial);
        bn_free(bn);
    }
    PROC->detach(sb);
}

/* Backend exec: a command in the sandbox's environment (the process backend's). */
static int bm_exec(struct sbx_sandbox *sb, const struct sbx_strv *cmd,
                   const struct sbx_exec_opts *opts, uint64_t key, sbx_exec_done_fn done,
                   struct sbx_err *err) {
    return PROC->exec(sb, cmd, opts, key, done, err);
}

/* Backend exec_cancel: also drops a metrics/processes query of that caller. */
static void bm_exec_cancel(struct sbx_sandbox *sb, uint64_t key) {
    struct bnode *bn = sbx_beam_of(sb);
    if (bn != NULL)
        sbx_beam_queries_cancel(bn, key, 0);
    PROC->exec_cancel(sb, key);
}

/* Backend beam_target: the node while it is up (or coming up). */
static int bm_beam_target(struct sbx_sandbox *sb, struct sbx_beam_target *t) {
    struct bnode *bn = sbx_beam_of(sb);
    if (bn == NULL || bn->phase == BP_IDLE || bn->target.node[0] == '\0')
        return -1;
    *t = bn->target;
    return 0;
}

/* Appends a binary of s. */
static void bin(ei_x_buff *x, const char *s) { ei_x_encode_binary(x, s, (int)strlen(s)); }

/* Backend shell: what `erl -remsh` needs (the cookie in argv and as an environment
 * assignment for iex: ERL_AFLAGS). */
static int bm_shell(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err) {
    struct bnode *bn = sbx_beam_of(sb);
    char erl[1024], self[300], env[400];
    const char *why;
    if (bn == NULL || bn->target.node[0] == '\0') {
        err->reason_atom = "unsupported";
        return -1;
    }
    if (sbx_beam_find_erl(erl, sizeof erl, &why) != 0)
        snprintf(erl, sizeof erl, "erl");
    int long_names = strchr(strchr(bn->target.node, '@'), '.') != NULL;
    snprintf(self, sizeof self, "remsh_%s_%u", sb->id, (unsigned)(sbx_wall_ms() % 100000));
    for (char *p = self; *p; p++)
        if (*p == '.')
            *p = '_';
    snprintf(env, sizeof env, "ERL_AFLAGS=-setcookie %s", bn->target.cookie);
    ei_x_encode_map_header(x, 4);
    ei_x_encode_atom(x, "kind");
    ei_x_encode_atom(x, "remsh");
    ei_x_encode_atom(x, "node");
    ei_x_encode_atom(x, bn->target.node);
    ei_x_encode_atom(x, "cookie_env");
    bin(x, env);
    ei_x_encode_atom(x, "argv");
    ei_x_encode_list_header(x, 7);
    bin(x, erl);
    bin(x, long_names ? "-name" : "-sname");
    bin(x, self);
    bin(x, "-remsh");
    bin(x, bn->target.node);
    bin(x, "-setcookie");
    bin(x, bn->target.cookie);
    ei_x_encode_empty_list(x);
    return 0;
}

/* 1 while bn's start-up sequence (probe, code paths, apps) has not finished. */
static int start_pending(const struct bnode *bn) {
    return bn != NULL &&
           (bn->phase == BP_WAIT_UP || bn->phase == BP_CODE_PATHS || bn->phase == BP_APPS);
}

/* Journal part: {ProcessPart, NodeBinary, CookieBinary, StartPending (0 | 1)}. The
 * journal is sandboxd's own state (never logged). */
static void bm_journal(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct bnode *bn = sbx_beam_of(sb);
    ei_x_encode_tuple_header(x, 4);
    PROC->journal(sb, x);
    bin(x, bn != NULL ? bn->target.node : "");
    bin(x, bn != NULL ? bn->target.cookie : "");
    ei_x_encode_long(x, start_pending(bn));
}

/* Decodes a binary of at most cap-1 bytes into out. 0 or -1. */
static int decode_bin(const char *buf, int *idx, char *out, size_t cap) {
    int type, size;
    long len;
    if (ei_get_type(buf, idx, &type, &size) != 0 || type != ERL_BINARY_EXT || size < 0 ||
        (size_t)size >= cap || ei_decode_binary(buf, idx, out, &len) != 0)
        return -1;
    out[len] = '\0';
    return 0;
}

/* Backend adopt: the process backend takes the OS process back; then we know the node
 * again by its journalled name and cookie and reconnect. Nothing is re-run, unless the
 * start-up had not finished (sandboxd died while the node came up): then it resumes
 * from the probe (add_pathsa and ensure_all_started are idempotent). A 3-tuple (older
 * journal) is a finished start-up. */
static int bm_adopt(struct sbx_sandbox *sb, const char *buf, int idx) {
    int arity, pidx;
    long pending = 0;
    struct sbx_beam_target t;
    memset(&t, 0, sizeof t);
    if (ei_decode_tuple_header(buf, &idx, &arity) != 0 || (arity != 3 && arity != 4))
        return 0;
    pidx = idx;
    if (ei_skip_term(buf, &idx) != 0 || decode_bin(buf, &idx, t.node, sizeof t.node) != 0 ||
        decode_bin(buf, &idx, t.cookie, sizeof t.cookie) != 0 ||
        (arity == 4 && ei_decode_long(buf, &idx, &pending) != 0))
        return 0;
    if (!PROC->adopt(sb, buf, pidx))
        return 0;
    struct bnode *bn = sbx_beam_of(sb);
    if (bn == NULL && (bn = bn_new(sb)) == NULL)
        return 1; /* adopted as a plain process: no remote calls */
    bn->target = t;
    memset(&t, 0, sizeof t);
    if (bn->target.node[0] == '\0' || sbx_node_set_peer_cookie(the_node(), bn->target.node,
                                                                bn->target.cookie) != 0) {
        bn->target.node[0] = '\0';
        return 1;
    }
    if (pending) {
        int ms = sb->cfg.health.timeout_ms > 0 ? sb->cfg.health.timeout_ms : DEFAULT_START_MS;
        bn->phase = BP_WAIT_UP;
        bn->app_i = 0;
        bn->deadline_ms = sbx_mono_ms() + ms;
        arm(bn, UP_POLL_MS);
        return 1;
    }
    bn->phase = BP_RUNNING;
    ei_x_buff a;
    ei_x_new(&a);
    ei_x_encode_empty_list(&a);
    sbx_remote_call(the_node(), &bn->target, "erlang", "node", a.buff, (size_t)a.index, 5000,
                    noop_done, bn->serial);
    ei_x_free(&a);
    return 1;
}

/* Backend ref: the node name once known, else the process backend's pid. */
static void bm_ref(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct bnode *bn = sbx_beam_of(sb);
    if (bn != NULL && bn->target.node[0] != '\0')
        ei_x_encode_atom(x, bn->target.node);
    else
        PROC->ref(sb, x);
}

/* Backend pause, resume, paused: the process backend's freezer (the node's OS process). */
static int bm_pause(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    return PROC->pause(sb, key, done, err);
}
static int bm_resume(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    return PROC->resume(sb, key, done, err);
}
static int bm_paused(struct sbx_sandbox *sb) { return PROC->paused(sb); }

/* Backend available: when erl can be found. */
static int bm_available(struct sbx_core *core, const char **why) {
    char erl[1024];
    (void)core;
    return sbx_beam_find_erl(erl, sizeof erl, why) == 0;
}

/* Sync forms are unused (the async ones are set) but the table wants them non-NULL. */
static int bm_metrics_sync(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err) {
    return PROC->metrics(sb, x, err);
}
/* As bm_metrics_sync: the process backend's view, appended to the caller's x. */
static int bm_processes_sync(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err) {
    return PROC->processes(sb, x, err);
}

/* Backend remove (destroy, once the node ended): the process backend's (cgroup and uid,
 * never waiting on the loop). */
static void bm_remove(struct sbx_sandbox *sb, void (*done)(struct sbx_sandbox *sb)) {
    PROC->remove(sb, done);
}

const struct sbx_backend sbx_backend_beam = {
    .config = &sbx_beam_config_schema,
    .name = "beam_node",
    .type = SBX_TYPE_BEAM_NODE,
    .local_uid = 1,
    .available = bm_available,
    .start = bm_start,
    .stop = bm_stop,
    .alive = bm_alive,
    .release = bm_release,
    .detach = bm_detach,
    .remove = bm_remove,
    .exec = bm_exec,
    .exec_cancel = bm_exec_cancel,
    .metrics = bm_metrics_sync,
    .processes = bm_processes_sync,
    .metrics_async = sbx_beam_metrics_async,
    .processes_async = sbx_beam_processes_async,
    .beam_target = bm_beam_target,
    .shell = bm_shell,
    .adopt = bm_adopt,
    .journal = bm_journal,
    .ref = bm_ref,
    .pause = bm_pause,
    .resume = bm_resume,
    .paused = bm_paused,
};
