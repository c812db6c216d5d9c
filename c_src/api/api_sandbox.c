/* Module `sandbox`: lifecycle and queries. Each handler checks every argument first and
 * answers {error, {badarg, Field, Why}} before touching anything. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "api/api.h"
#include "api/reply.h"
#include "core/core.h"
#include "core/health.h"
#include "core/logbuf.h"
#include "core/pause.h"
#include "core/sandbox.h"
#include "core/subs.h"
#include "dist/node.h"
#include "util/fdreserve.h"
#include "util/log.h"

#define ARG(call, i) ((call)->args.buff), (&(int){(call)->argv[(i)]})

/* Looks up the sandbox named by argument i; on failure answers and returns NULL. */
static struct sbx_sandbox *find_arg(struct sbx_call *call, int i) {
    char id[SBX_ID_MAX + 1];
    struct sbx_badarg bad = {0};
    struct sbx_core *core = sbx_core_get();
    int idx = call->argv[i];
    if (sbx_decode_id(call->args.buff, &idx, id, &bad) != 0) {
        sbx_reply_badarg(&call->result, &bad);
        return NULL;
    }
    struct sbx_sandbox *sb = sbx_sandbox_find(core, id);
    if (sb == NULL || sb->destroying) {
        sbx_reply_error(&call->result, "not_found");
        return NULL;
    }
    return sb;
}

/* See api.h. */
struct sbx_sandbox *sbx_api_sandbox_arg(struct sbx_call *call, int i) { return find_arg(call, i); }

/* See api.h. */
int sbx_api_refuse_paused(struct sbx_call *call, const struct sbx_sandbox *sb) {
    if (!sbx_pause_blocks(sb))
        return 0;
    sbx_reply_error(&call->result, "paused");
    return 1;
}

/* 1 (answered {error, {unavailable, Type, Why}}) when sb's backend cannot be reached
 * now (the Docker engine is down): calls on it fail at once instead of waiting. */
static int backend_down(struct sbx_call *call, struct sbx_sandbox *sb) {
    const char *why = NULL;
    if (sb->backend->available == NULL || sb->backend->available(sbx_core_get(), &why))
        return 0;
    sbx_reply_unavailable(&call->result, sbx_type_name(sb->cfg.type), why ? why : "unavailable");
    return 1;
}

/* Appends {ok, SandboxMap} to call->result. */
static void reply_ok_sandbox(struct sbx_call *call, const struct sbx_sandbox *sb) {
    ei_x_encode_tuple_header(&call->result, 2);
    ei_x_encode_atom(&call->result, "ok");
    sbx_sandbox_encode(sb, &call->result);
}

/* A pending call waiting on a sandbox: answered {ok, Sandbox} or an error. */
static void answer_waiter(struct sbx_sandbox *sb, uint64_t key, int ok, const char *err_atom) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    free(call->state);
    call->state = NULL;
    if (ok && sb != NULL)
        reply_ok_sandbox(call, sb);
    else
        sbx_reply_error(&call->result, err_atom);
    sbx_call_done(call);
}

/* Call cancel for waits that have nothing to undo: frees
 * call->state. A waiter left behind finds no call later. */
static void cancel_plain(struct sbx_call *call) {
    free(call->state);
    call->state = NULL;
}

/* create(Id, Type, Config) */

static void create_when_gone(struct sbx_sandbox *sb, uint64_t key, int ok);

static void create_cancel(struct sbx_call *call) {
    /* The caller left while the sandbox came up: nothing must be left behind. */
    struct sbx_core *core = sbx_core_get();
    struct sbx_sandbox *sb = call->state != NULL ? sbx_sandbox_find(core, call->state) : NULL;
    if (sb != NULL) {
        sbx_health_cancel(sb);
        sbx_sandbox_destroy(sb, "destroyed");
    }
    cancel_plain(call);
}

/* The unhealthy sandbox is gone: only now does the creator learn of the timeout. */
static void create_gone(struct sbx_sandbox *sb, uint64_t key, int ok) {
    (void)sb;
    (void)ok;
    answer_waiter(NULL, key, 0, "timeout");
}

/* Health verdict for a pending create, whose call may be gone (key lookup). Healthy answers {ok,
 * Sandbox}; unhealthy destroys the sandbox and answers {error, timeout} only once it is gone. */
static void create_health_done(struct sbx_sandbox *sb, uint64_t key, int healthy) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (healthy) {
        if (call != NULL)
            answer_waiter(sb, key, 1, NULL);
        return;
    }
    SBX_WARN("health check failed: destroying", "id=%s", sb->id);
    if (call != NULL && !sb->destroying) {
        /* Nothing to cancel any more: the destroy below finishes on its own. */
        call->cancel = cancel_plain;
        if (sbx_sandbox_wait(sb, SBX_WAIT_GONE, key, create_gone) != 0)
            answer_waiter(NULL, key, 0, "timeout");
    } else if (call != NULL) {
        answer_waiter(NULL, key, 0, "timeout");
    }
    sbx_sandbox_destroy(sb, "unhealthy");
}

/* Zero-delay timer: destroys the sandbox (by id) whose start failed, outside any waiter
 * callback. Frees the id. */
static void destroy_failed_cb(evutil_socket_t fd, short what, void *arg) {
    char *id = arg;
    struct sbx_sandbox *sb = sbx_sandbox_find(sbx_core_get(), id);
    (void)fd;
    (void)what;
    if (sb != NULL && !sb->destroying && sb->status == SBX_ST_ERROR)
        sbx_sandbox_destroy(sb, "destroyed");
    free(id);
}

/* Starts the health check of a create that is running, or answers {ok, Sandbox}. The
 * answer may be pending (SBX_API_PENDING; call->state and cancel set). */
static enum sbx_api_status create_running(struct sbx_call *call, struct sbx_sandbox *sb) {
    if (!sbx_health_wanted(sb)) {
        reply_ok_sandbox(call, sb);
        return SBX_API_DONE;
    }
    if (call->state == NULL)
        call->state = strdup(sb->id);
    call->cancel = create_cancel;
    if (call->state == NULL || sbx_health_start(sb, sbx_call_key(call), create_health_done) != 0) {
        sbx_sandbox_destroy(sb, "destroyed");
        free(call->state);
        call->state = NULL;
        sbx_reply_error(&call->result, "timeout");
        return SBX_API_DONE;
    }
    return SBX_API_PENDING;
}

/* GONE waiter of a create whose start failed: the backend's error, now that nothing of
 * the sandbox is left (as when a start fails at once). */
static void create_failed_gone(struct sbx_sandbox *sb, uint64_t key, int ok) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    (void)ok;
    if (call == NULL)
        return;
    free(call->state);
    call->state = NULL;
    sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &sb->start_err);
    sbx_call_done(call);
}

/* Waiter of a create whose backend start was pending: running goes on to the health check;
 * a failed start is destroyed right after (from the loop) and its error answered once the
 * sandbox is gone (else at once). */
static void create_started(struct sbx_sandbox *sb, uint64_t key, int ok) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    if (ok && create_running(call, sb) == SBX_API_PENDING)
        return;
    int answer_when_gone = !ok && sb->start_err.reason_atom != NULL && !sb->destroying &&
                           sbx_sandbox_wait(sb, SBX_WAIT_GONE, key, create_failed_gone) == 0;
    if (answer_when_gone)
        call->cancel = cancel_plain;
    if (!ok) {
        char *id = strdup(sb->id);
        struct timeval now = {0, 0};
        if (id != NULL &&
            event_base_once(sbx_core_get()->base, -1, EV_TIMEOUT, destroy_failed_cb, id, &now) != 0)
            free(id);
        if (answer_when_gone)
            return;
        if (sb->start_err.reason_atom != NULL)
            sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &sb->start_err);
        else
            sbx_reply_error(&call->result, "timeout");
    }
    free(call->state);
    call->state = NULL;
    sbx_call_done(call);
}

/* See api.h. Pending while the backend brings the workload up or a health check runs; a
 * caller that leaves then destroys the sandbox. A sandbox that failed to start is freed
 * again, and the backend's error answered. */
enum sbx_api_status sbx_api_create(struct sbx_call *call) {
    struct sbx_core *core = sbx_core_get();
    char id[SBX_ID_MAX + 1];
    struct sbx_badarg bad = {0};
    struct sbx_config cfg;
    struct sbx_err err;
    enum sbx_type type;
    struct sbx_rpid owner = {0};
    const char *why;
    int idx, rc;

    memset(&cfg, 0, sizeof cfg);
    memset(&err, 0, sizeof err);
    idx = call->argv[0];
    if (sbx_decode_id(call->args.buff, &idx, id, &bad) != 0)
        goto badarg;
    idx = call->argv[1];
    if (sbx_decode_type(call->args.buff, &idx, &type, &bad) != 0)
        goto badarg;
    const struct sbx_backend *be = sbx_backend_for(type);
    if (be == NULL) {
        sbx_reply_unavailable(&call->result, sbx_type_name(type), "not built");
        goto done;
    }
    idx = call->argv[2];
    if (sbx_config_decode(call->args.buff, &idx, type, be->config, &cfg, &bad) != 0)
        goto badarg;
    if (cfg.owner != NULL) {
        int oidx = 0, is_local;
        uint32_t n, s;
        if (sbx_node_decode_pid(core->node, cfg.owner, &oidx, &is_local, &n, &s, &owner) != 0 ||
            is_local || owner.conn_id == 0) {
            bad = (struct sbx_badarg){.field = "owner", .why = "not_reachable"};
            goto badarg;
        }
    }
    if (!be->available(core, &why)) {
        sbx_reply_unavailable(&call->result, sbx_type_name(type), why);
        goto done;
    }
    struct sbx_sandbox *old = sbx_sandbox_find(core, id);
    if (old != NULL && old->destroying &&
        sbx_sandbox_wait(old, SBX_WAIT_GONE, sbx_call_key(call), create_when_gone) == 0) {
        /* Destroyed but not gone yet (its container being removed): create once it is. */
        call->cancel = cancel_plain;
        goto done_pending;
    }
    if (old != NULL) {
        sbx_reply_error(&call->result, "already_exists");
        goto done;
    }
    if (core->count >= core->max_sandboxes) {
        sbx_reply_error(&call->result, "limit_reached");
        goto done;
    }
    errno = 0;
    struct sbx_sandbox *sb = sbx_sandbox_new(core, id, &cfg, &why);
    if (sb == NULL) {
        int e = errno;
        int full = sbx_fd_exhausted(e) || e == EUSERS; /* descriptors, or the uid range */
        err.reason_atom = full ? "limit_reached" : "backend";
        snprintf(err.detail, sizeof err.detail, "%s",
                 e == EUSERS ? "uids" : sbx_fd_exhausted(e) ? "open_files" : why);
        sbx_reply_err(&call->result, sbx_type_name(type), &err);
        goto done;
    }
    rc = sbx_sandbox_start(sb, &err);
    if (rc < 0) {
        sbx_sandbox_free(sb);
        sbx_reply_err(&call->result, sbx_type_name(type), &err);
        goto done;
    }
    if (sb->cfg.owner != NULL) {
        ei_x_buff ref;
        ei_x_new(&ref);
        if (sbx_core_monitor(core, &owner, &ref) == 0 && (size_t)ref.index <= sizeof sb->owner_ref) {
            memcpy(sb->owner_ref, ref.buff, (size_t)ref.index);
            sb->owner_ref_len = ref.index;
            sb->owner = owner;
            sb->has_owner = 1;
        }
        ei_x_free(&ref);
    }
    if (rc == SBX_START_PENDING) {
        call->state = strdup(sb->id);
        call->cancel = create_cancel;
        if (call->state == NULL ||
            sbx_sandbox_wait(sb, 1u << SBX_ST_RUNNING, sbx_call_key(call), create_started) != 0) {
            free(call->state);
            call->state = NULL;
            sbx_sandbox_destroy(sb, "destroyed");
            sbx_reply_error(&call->result, "limit_reached");
            return SBX_API_DONE;
        }
        return SBX_API_PENDING;
    }
    return create_running(call, sb);
badarg:
    sbx_reply_badarg(&call->result, &bad);
done:
    sbx_config_free(&cfg);
    return SBX_API_DONE;
done_pending:
    sbx_config_free(&cfg);
    return SBX_API_PENDING;
}

/* Zero-delay timer: runs a create again (by key; the caller may have left). Frees arg. */
static void create_again_cb(evutil_socket_t fd, short what, void *arg) {
    uint64_t key = *(uint64_t *)arg;
    (void)fd;
    (void)what;
    free(arg);
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    call->cancel = NULL;
    if (sbx_api_create(call) == SBX_API_DONE)
        sbx_call_done(call);
}

/* Waiter: the sandbox with the id a create waits for is gone (or failed); the create runs
 * again from the loop, outside the destroy that runs this. */
static void create_when_gone(struct sbx_sandbox *sb, uint64_t key, int ok) {
    struct timeval tv = {0, 0};
    uint64_t *k = malloc(sizeof *k);
    (void)sb;
    (void)ok;
    if (k != NULL) {
        *k = key;
        if (event_base_once(sbx_core_get()->base, -1, EV_TIMEOUT, create_again_cb, k, &tv) == 0)
            return;
        free(k);
    }
    answer_waiter(NULL, key, 0, "limit_reached");
}

/* destroy(Id): answered once everything is gone. */
static void destroy_done(struct sbx_sandbox *sb, uint64_t key, int ok) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    (void)sb;
    (void)ok;
    if (call == NULL)
        return;
    ei_x_encode_atom(&call->result, "ok");
    sbx_call_done(call);
}

/* See api.h. Answers ok once the sandbox is gone, which may happen before
 * this returns. No cancel: the destroy completes even if the caller leaves. */
enum sbx_api_status sbx_api_destroy(struct sbx_call *call) {
    struct sbx_sandbox *sb = find_arg(call, 0);
    if (sb == NULL)
        return SBX_API_DONE;
    /* Once asked, destroy completes even if this caller leaves: no cancel. */
    if (sbx_sandbox_wait(sb, SBX_WAIT_GONE, sbx_call_key(call), destroy_done) != 0) {
        sbx_reply_error(&call->result, "limit_reached");
        return SBX_API_DONE;
    }
    sbx_sandbox_destroy(sb, "destroyed");
    return SBX_API_PENDING;
}

/* Waiter callback of stop, start and restart: {ok, Sandbox}, the backend's error when a
 * start failed, or {error, timeout} if the wait failed otherwise. */
static void status_done(struct sbx_sandbox *sb, uint64_t key, int ok) {
    struct sbx_call *call;
    if (!ok && sb != NULL && sb->status == SBX_ST_ERROR && sb->start_err.reason_atom != NULL &&
        (call = sbx_call_from_key(sbx_core_get()->node, key)) != NULL) {
        free(call->state);
        call->state = NULL;
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &sb->start_err);
        sbx_call_done(call);
        return;
    }
    answer_waiter(sb, key, ok, "timeout");
}

/* Starts sb for start/restart and answers: at once, or pending until running. */
static enum sbx_api_status start_and_answer(struct sbx_call *call, struct sbx_sandbox *sb) {
    struct sbx_err err = {0};
    int rc = sbx_sandbox_start(sb, &err);
    if (rc < 0) {
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &err);
        return SBX_API_DONE;
    }
    if (rc == SBX_START_PENDING &&
        sbx_sandbox_wait(sb, 1u << SBX_ST_RUNNING, sbx_call_key(call), status_done) == 0) {
        call->cancel = cancel_plain;
        return SBX_API_PENDING;
    }
    reply_ok_sandbox(call, sb);
    return SBX_API_DONE;
}

/* See api.h. Answers at once when nothing is running; otherwise pending until
 * stopped or exited. A caller that leaves abandons the wait, not the stop. */
enum sbx_api_status sbx_api_stop(struct sbx_call *call) {
    struct sbx_sandbox *sb = find_arg(call, 0);
    if (sb == NULL || backend_down(call, sb))
        return SBX_API_DONE;
    if (!sb->backend->alive(sb) && sb->status != SBX_ST_STOPPING) {
        if (sb->status == SBX_ST_RUNNING || sb->status == SBX_ST_STARTING) {
            struct sbx_exit none = {0, 0};
            sb->stop_requested = 1;
            sb->stop_reason = "stopped";
            sbx_sandbox_ended(sb, &none, 0);
        }
        reply_ok_sandbox(call, sb);
        return SBX_API_DONE;
    }
    call->cancel = cancel_plain;
    sbx_sandbox_wait(sb, 1u << SBX_ST_STOPPED | 1u << SBX_ST_EXITED, sbx_call_key(call), status_done);
    if (sb->status != SBX_ST_STOPPING)
        sbx_sandbox_stop(sb, "stopped");
    return SBX_API_PENDING;
}

/* See api.h. While stopping, pending until the restart that
 * follows the stop is running; otherwise answers at once. */
enum sbx_api_status sbx_api_start(struct sbx_call *call) {
    struct sbx_sandbox *sb = find_arg(call, 0);
    if (sb == NULL || backend_down(call, sb))
        return SBX_API_DONE;
    if (sb->status == SBX_ST_RUNNING || sb->status == SBX_ST_STARTING) {
        reply_ok_sandbox(call, sb);
        return SBX_API_DONE;
    }
    if (sbx_api_refuse_paused(call, sb))
        return SBX_API_DONE;
    if (sb->status == SBX_ST_STOPPING) {
        sb->restart_after_stop = 1;
        call->cancel = cancel_plain;
        sbx_sandbox_wait(sb, 1u << SBX_ST_RUNNING, sbx_call_key(call), status_done);
        return SBX_API_PENDING;
    }
    return start_and_answer(call, sb);
}

/* See api.h. Nothing alive: starts at once. Otherwise stops,
 * then starts again, pending until running. */
enum sbx_api_status sbx_api_restart(struct sbx_call *call) {
    struct sbx_sandbox *sb = find_arg(call, 0);
    if (sb == NULL || backend_down(call, sb))
        return SBX_API_DONE;
    if (!sb->backend->alive(sb) && sb->status != SBX_ST_STOPPING)
        return start_and_answer(call, sb);
    sb->restart_after_stop = 1;
    call->cancel = cancel_plain;
    sbx_sandbox_wait(sb, 1u << SBX_ST_RUNNING, sbx_call_key(call), status_done);
    if (sb->status != SBX_ST_STOPPING)
        sbx_sandbox_stop(sb, "restart");
    return SBX_API_PENDING;
}

/* See api.h. A sandbox being destroyed is not_found. */
enum sbx_api_status sbx_api_get(struct sbx_call *call) {
    struct sbx_sandbox *sb = find_arg(call, 0);
    if (sb != NULL)
        reply_ok_sandbox(call, sb);
    return SBX_API_DONE;
}

/* 1 if sb has every key => value pair of want. */
static int label_match(const struct sbx_sandbox *sb, const struct sbx_kvv *want) {
    for (size_t i = 0; i < want->n; i++) {
        int found = 0;
        for (size_t j = 0; j < sb->cfg.labels.n && !found; j++)
            found = strcmp(sb->cfg.labels.v[j].key, want->v[i].key) == 0 &&
                    strcmp(sb->cfg.labels.v[j].value, want->v[i].value) == 0;
        if (!found)
            return 0;
    }
    return 1;
}

/* Appends the list of sandboxes matching f (NULL: all), in
 * creation order, leaving out those being destroyed. */
static void encode_list(struct sbx_call *call, const struct sbx_list_filter *f) {
    struct sbx_core *core = sbx_core_get();
    ei_x_buff items;
    long n = 0;
    ei_x_new(&items);
    for (struct sbx_sandbox *sb = core->first; sb != NULL; sb = sb->next) {
        if (sb->destroying)
            continue;
        if (f != NULL && ((f->has_type && sb->cfg.type != f->type) ||
                          (f->status >= 0 && (int)sb->status != f->status) || !label_match(sb, &f->labels)))
            continue;
        sbx_sandbox_encode(sb, &items);
        n++;
    }
    if (n > 0)
        ei_x_encode_list_header(&call->result, n);
    ei_x_append(&call->result, &items);
    ei_x_encode_empty_list(&call->result);
    ei_x_free(&items);
}

/* See api.h. Every sandbox not being destroyed. */
enum sbx_api_status sbx_api_list0(struct sbx_call *call) {
    encode_list(call, NULL);
    return SBX_API_DONE;
}

/* See api.h. A filter that does not decode answers badarg. */
enum sbx_api_status sbx_api_list1(struct sbx_call *call) {
    struct sbx_list_filter f;
    struct sbx_badarg bad = {0};
    memset(&f, 0, sizeof f);
    int idx = call->argv[0];
    if (sbx_list_filter_decode(call->args.buff, &idx, &f, &bad) != 0) {
        sbx_reply_badarg(&call->result, &bad);
        return SBX_API_DONE;
    }
    encode_list(call, &f);
    sbx_list_filter_free(&f);
    return SBX_API_DONE;
}

/* exec(Id, Cmd[, Opts]) */

struct exec_state {
    char id[SBX_ID_MAX + 1];
    const char *type; /* the backend's name, for errors */
};

/* Call cancel: kills the exec (its done then never runs) and frees the state. */
static void exec_cancel(struct sbx_call *call) {
    struct exec_state *st = call->state;
    struct sbx_sandbox *sb = st != NULL ? sbx_sandbox_find(sbx_core_get(), st->id) : NULL;
    if (sb != NULL && sb->backend->exec_cancel != NULL)
        sb->backend->exec_cancel(sb, sbx_call_key(call));
    cancel_plain(call);
}

/* Exec completion, with the call looked up by key (it may be gone): answers {ok,
 * Result}, {error, timeout} or the backend's error. r is valid only during this call. */
static void exec_done(uint64_t key, const struct sbx_exec_result *r, const struct sbx_err *err) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    const struct exec_state *st = call->state;
    const char *type = st != NULL && st->type != NULL ? st->type : "process";
    free(call->state);
    call->state = NULL;
    ei_x_buff *x = &call->result;
    if (err != NULL) {
        sbx_reply_err(x, type, err);
    } else if (r->timed_out) {
        sbx_reply_error(x, "timeout");
    } else {
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_atom(x, "ok");
        ei_x_encode_map_header(x, 5 + (r->signal != 0));
        ei_x_encode_atom(x, "exit_code");
        ei_x_encode_long(x, r->exit_code >= 0 ? r->exit_code : 128 + r->signal);
        if (r->signal != 0) {
            ei_x_encode_atom(x, "signal");
            ei_x_encode_long(x, r->signal);
        }
        ei_x_encode_atom(x, "stdout");
        ei_x_encode_binary(x, r->stdout_data, (int)r->stdout_len);
        ei_x_encode_atom(x, "stderr");
        ei_x_encode_binary(x, r->stderr_data, (int)r->stderr_len);
        ei_x_encode_atom(x, "duration_ms");
        ei_x_encode_longlong(x, r->duration_ms);
        ei_x_encode_atom(x, "truncated");
        ei_x_encode_atom(x, r->truncated ? "true" : "false");
    }
    sbx_call_done(call);
}

/* exec/2 and exec/3: checks Id, Cmd and Opts, then starts the command,
 * pending until it finishes. cmd and opts are freed here either way. */
static enum sbx_api_status do_exec(struct sbx_call *call, int with_opts) {
    struct sbx_strv cmd = {0};
    struct sbx_exec_opts opts;
    struct sbx_badarg bad = {0};
    struct sbx_err err = {0};
    struct exec_state *st = NULL;
    int idx;

    memset(&opts, 0, sizeof opts);
    struct sbx_sandbox *sb = find_arg(call, 0);
    if (sb == NULL || backend_down(call, sb) || sbx_api_refuse_paused(call, sb))
        return SBX_API_DONE;
    idx = call->argv[1];
    if (sbx_decode_cmd(call->args.buff, &idx, "cmd", &cmd, &bad) != 0)
        goto badarg;
    idx = with_opts ? call->argv[2] : 0;
    if (sbx_exec_opts_decode(with_opts ? call->args.buff : NULL, &idx, &opts, &bad) != 0)
        goto badarg;
    st = calloc(1, sizeof *st);
    if (st == NULL) {
        sbx_reply_error(&call->result, "limit_reached");
        goto done;
    }
    snprintf(st->id, sizeof st->id, "%s", sb->id);
    st->type = sbx_type_name(sb->cfg.type);
    if (sb->backend->exec == NULL) {
        sbx_reply_error(&call->result, "unsupported");
        goto done;
    }
    if (sb->backend->exec(sb, &cmd, &opts, sbx_call_key(call), exec_done, &err) != 0) {
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &err);
        goto done;
    }
    call->state = st;
    call->cancel = exec_cancel;
    st = NULL;
    for (size_t i = 0; i < cmd.n; i++)
        free(cmd.v[i]);
    free(cmd.v);
    sbx_exec_opts_free(&opts);
    return SBX_API_PENDING;
badarg:
    sbx_reply_badarg(&call->result, &bad);
done:
    free(st);
    for (size_t i = 0; i < cmd.n; i++)
        free(cmd.v[i]);
    free(cmd.v);
    sbx_exec_opts_free(&opts);
    return SBX_API_DONE;
}

/* See api.h. exec(Id, Cmd) with default options. */
enum sbx_api_status sbx_api_exec2(struct sbx_call *call) { return do_exec(call, 0); }
/* See api.h. exec(Id, Cmd, Opts). */
enum sbx_api_status sbx_api_exec3(struct sbx_call *call) { return do_exec(call, 1); }

/* logs(Id, Opts) */
struct logs_ctx {
    ei_x_buff items;
    long n;
};

/* sbx_logbuf_query callback: appends one #{ts, stream, data} map. */
static void add_record(void *arg, int64_t ts, enum sbx_stream stream, const char *data, size_t len) {
    struct logs_ctx *c = arg;
    ei_x_encode_map_header(&c->items, 3);
    ei_x_encode_atom(&c->items, "ts");
    ei_x_encode_longlong(&c->items, ts);
    ei_x_encode_atom(&c->items, "stream");
    ei_x_encode_atom(&c->items, sbx_stream_name(stream));
    ei_x_encode_atom(&c->items, "data");
    ei_x_encode_binary(&c->items, data, (int)len);
    c->n++;
}

/* logs/1 and logs/2: answers {ok, Records}, oldest first; the
 * newest 100 unless Opts says otherwise. */
static enum sbx_api_status do_logs(struct sbx_call *call, int with_opts) {
    struct sbx_logs_opts opts = {.tail = 100, .since = 0};
    struct sbx_badarg bad = {0};
    struct sbx_sandbox *sb = find_arg(call, 0);
    if (sb == NULL)
        return SBX_API_DONE;
    int idx = with_opts ? call->argv[1] : 0;
    if (with_opts && sbx_logs_opts_decode(call->args.buff, &idx, &opts, &bad) != 0) {
        sbx_reply_badarg(&call->result, &bad);
        return SBX_API_DONE;
    }
    struct logs_ctx c = {.n = 0};
    ei_x_new(&c.items);
    sbx_logbuf_query(sb->logs, opts.tail, opts.since, add_record, &c);
    ei_x_encode_tuple_header(&call->result, 2);
    ei_x_encode_atom(&call->result, "ok");
    if (c.n > 0)
        ei_x_encode_list_header(&call->result, c.n);
    ei_x_append(&call->result, &c.items);
    ei_x_encode_empty_list(&call->result);
    ei_x_free(&c.items);
    return SBX_API_DONE;
}

/* See api.h. logs(Id): the newest 100 records. */
enum sbx_api_status sbx_api_logs1(struct sbx_call *call) { return do_logs(call, 0); }
/* See api.h. logs(Id, Opts). */
enum sbx_api_status sbx_api_logs2(struct sbx_call *call) { return do_logs(call, 1); }

typedef int (*query_fn)(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err);
typedef int (*query_async_fn)(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                              struct sbx_err *err);

/* Answer of an asynchronous backend query for a call that may be gone: {ok, Value} or
 * the backend's error. */
static void query_done(struct sbx_sandbox *sb, uint64_t key, const char *term, size_t len,
                       const struct sbx_err *err) {
    struct sbx_call *call = sbx_call_from_key(sbx_core_get()->node, key);
    if (call == NULL)
        return;
    free(call->state);
    call->state = NULL;
    if (term != NULL && err == NULL) {
        ei_x_encode_tuple_header(&call->result, 2);
        ei_x_encode_atom(&call->result, "ok");
        ei_x_append_buf(&call->result, term, (int)len);
    } else {
        static const struct sbx_err unknown = {"backend", "no answer"};
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), err != NULL ? err : &unknown);
    }
    free(call->state); /* the sandbox id do_query kept for the cancel */
    call->state = NULL;
    sbx_call_done(call);
}

/* See api.h. The backend drops the query or copy (exec_cancel by the call's key); frees the
 * sandbox id in call->state. */
void sbx_api_cancel_backend_call(struct sbx_call *call) {
    struct sbx_sandbox *sb = call->state != NULL ? sbx_sandbox_find(sbx_core_get(), call->state)
                                                 : NULL;
    if (sb != NULL && sb->backend->exec_cancel != NULL)
        sb->backend->exec_cancel(sb, sbx_call_key(call));
    cancel_plain(call);
}

/* metrics/1 and processes/1: answers {ok, Value} from the backend, or its error. */
static enum sbx_api_status do_query(struct sbx_call *call, int metrics) {
    struct sbx_err err = {0};
    ei_x_buff v;
    struct sbx_sandbox *sb = find_arg(call, 0);
    if (sb == NULL || backend_down(call, sb) || sbx_api_refuse_paused(call, sb))
        return SBX_API_DONE;
    /* A container running a BEAM node lists the node's processes, as beam_node does. */
    if (!metrics && sb->cfg.type != SBX_TYPE_BEAM_NODE && sb->cfg.has_beam)
        return sbx_api_beam_processes(call, sb);
    query_async_fn afn = metrics ? sb->backend->metrics_async : sb->backend->processes_async;
    if (afn != NULL) {
        call->state = strdup(sb->id);
        call->cancel = sbx_api_cancel_backend_call;
        if (call->state != NULL && afn(sb, sbx_call_key(call), query_done, &err) == 0)
            return SBX_API_PENDING;
        free(call->state);
        call->state = NULL;
        call->cancel = NULL;
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &err);
        return SBX_API_DONE;
    }
    query_fn fn = metrics ? sb->backend->metrics : sb->backend->processes;
    ei_x_new(&v);
    if (fn(sb, &v, &err) != 0) {
        sbx_reply_err(&call->result, sbx_type_name(sb->cfg.type), &err);
    } else {
        ei_x_encode_tuple_header(&call->result, 2);
        ei_x_encode_atom(&call->result, "ok");
        ei_x_append(&call->result, &v);
    }
    ei_x_free(&v);
    return SBX_API_DONE;
}

/* See api.h. */
enum sbx_api_status sbx_api_metrics(struct sbx_call *call) { return do_query(call, 1); }
/* See api.h. */
enum sbx_api_status sbx_api_processes(struct sbx_call *call) { return do_query(call, 0); }

/* See api.h. {error, unsupported} when the backend has no shell or it fails. */
enum sbx_api_status sbx_api_shell(struct sbx_call *call) {
    struct sbx_err err = {0};
    struct sbx_sandbox *sb = find_arg(call, 0);
    if (sb == NULL)
        return SBX_API_DONE;
    ei_x_buff v;
    ei_x_new(&v);
    if (sb->backend->shell == NULL || sb->backend->shell(sb, &v, &err) != 0) {
        sbx_reply_error(&call->result, "unsupported");
    } else {
        ei_x_encode_tuple_header(&call->result, 2);
        ei_x_encode_atom(&call->result, "ok");
        ei_x_append(&call->result, &v);
    }
    ei_x_free(&v);
    return SBX_API_DONE;
}

/* subscribe(Id | all, Pid, Topics) */
enum sbx_api_status sbx_api_subscribe(struct sbx_call *call) {
    struct sbx_core *core = sbx_core_get();
    struct sbx_badarg bad = {0};
    char id[SBX_ID_MAX + 1];
    char atom[MAXATOMLEN_UTF8];
    const char *which = NULL;
    unsigned topics;
    int idx = call->argv[0], is_local, type, size;
    uint32_t n, s;
    struct sbx_rpid pid;
    const char *why;

    ei_get_type(call->args.buff, &idx, &type, &size);
    if ((type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_UTF8_EXT || type == ERL_ATOM_UTF8_EXT ||
         type == ERL_SMALL_ATOM_EXT) &&
        ei_decode_atom_as(call->args.buff, &(int){idx}, atom, sizeof atom, ERLANG_UTF8, NULL, NULL) == 0 &&
        strcmp(atom, "all") == 0) {
        which = NULL;
    } else {
        if (sbx_decode_id(call->args.buff, &idx, id, &bad) != 0)
            goto badarg;
        if (sbx_sandbox_find(core, id) == NULL) {
            sbx_reply_error(&call->result, "not_found");
            return SBX_API_DONE;
        }
        which = id;
    }
    idx = call->argv[1];
    ei_get_type(call->args.buff, &idx, &type, &size);
    if ((type != ERL_PID_EXT && type != ERL_NEW_PID_EXT) ||
        sbx_node_decode_pid(core->node, call->args.buff, &idx, &is_local, &n, &s, &pid) != 0 ||
        is_local || pid.conn_id == 0) {
        bad = (struct sbx_badarg){.field = "pid", .why = "not_a_pid"};
        goto badarg;
    }
    idx = call->argv[2];
    if (sbx_decode_topics(call->args.buff, &idx, &topics, &bad) != 0)
        goto badarg;
    ei_x_buff ref;
    ei_x_new(&ref);
    if (sbx_subs_add(core, which, &pid, topics, &ref, &why) != 0) {
        sbx_reply_error(&call->result, strcmp(why, "limit_reached") == 0 ? "limit_reached" : "noconnection");
    } else {
        ei_x_encode_tuple_header(&call->result, 2);
        ei_x_encode_atom(&call->result, "ok");
        ei_x_append(&call->result, &ref);
    }
    ei_x_free(&ref);
    return SBX_API_DONE;
badarg:
    sbx_reply_badarg(&call->result, &bad);
    return SBX_API_DONE;
}

/* See api.h. ok even when no such subscription exists; one that did exist is demonitored. */
enum sbx_api_status sbx_api_unsubscribe(struct sbx_call *call) {
    int idx = call->argv[0], type, size;
    ei_get_type(call->args.buff, &idx, &type, &size);
    if (type != ERL_NEW_REFERENCE_EXT && type != ERL_NEWER_REFERENCE_EXT) {
        struct sbx_badarg bad = {.field = "ref", .why = "not_a_reference"};
        sbx_reply_badarg(&call->result, &bad);
        return SBX_API_DONE;
    }
    const char *start = call->args.buff + idx;
    ei_skip_term(call->args.buff, &idx);
    sbx_subs_remove(sbx_core_get(), start, (size_t)(call->args.buff + idx - start), 1);
    ei_x_encode_atom(&call->result, "ok");
    return SBX_API_DONE;
}
