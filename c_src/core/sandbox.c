/* Sandbox registry and lifecycle: statuses, journal records, waiters, restarts, ttl,
 * output and the events that go with them. */
#define _GNU_SOURCE
#include "core/sandbox.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "core/health.h"
#include "core/journal.h"
#include "core/logbuf.h"
#include "core/pause.h"
#include "core/subs.h"
#include "trace/trace.h"
#include "dist/node.h"
#include "util/clock.h"
#include "util/log.h"

static const char *const status_names[] = {"starting", "running", "paused", "stopping",
                                           "stopped",  "exited",  "error"};
static const char *const type_names[] = {"process", "docker", "beam_node", "vm"};

/* See sandbox.h. A static string; st must be a valid status. */
const char *sbx_status_name(enum sbx_status st) { return status_names[st]; }
/* See sandbox.h. A static string; t must be a valid type. */
const char *sbx_type_name(enum sbx_type t) { return type_names[t]; }

/* FNV-1a of id, reduced to an index into core->buckets. */
static unsigned hash_id(const char *id) {
    unsigned h = 2166136261u;
    for (; *id != '\0'; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % SBX_ID_BUCKETS;
}

/* See sandbox.h. The core keeps ownership; sandboxes being destroyed are found too. */
struct sbx_sandbox *sbx_sandbox_find(struct sbx_core *core, const char *id) {
    for (struct sbx_sandbox *sb = core->buckets[hash_id(id)]; sb != NULL; sb = sb->hnext)
        if (strcmp(sb->id, id) == 0)
            return sb;
    return NULL;
}

/* See sandbox.h. Sandboxes being destroyed are counted too. */
size_t sbx_sandbox_count(const struct sbx_core *core) { return core->count; }

/* Links sb into the id hash and at the tail of the creation-order list. */
static void registry_add(struct sbx_core *core, struct sbx_sandbox *sb) {
    unsigned h = hash_id(sb->id);
    sb->hnext = core->buckets[h];
    core->buckets[h] = sb;
    sb->prev = core->last;
    if (core->last != NULL)
        core->last->next = sb;
    else
        core->first = sb;
    core->last = sb;
    core->count++;
}

/* Unlinks sb from the id hash and the creation-order list; frees nothing. */
static void registry_remove(struct sbx_core *core, struct sbx_sandbox *sb) {
    for (struct sbx_sandbox **pp = &core->buckets[hash_id(sb->id)]; *pp != NULL; pp = &(*pp)->hnext) {
        if (*pp == sb) {
            *pp = sb->hnext;
            break;
        }
    }
    if (sb->prev != NULL)
        sb->prev->next = sb->next;
    else
        core->first = sb->next;
    if (sb->next != NULL)
        sb->next->prev = sb->prev;
    else
        core->last = sb->prev;
    core->count--;
}

/* The ttl expired: destroys the sandbox with reason ttl (it may be freed before this returns). */
static void ttl_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    sbx_sandbox_destroy(arg, "ttl");
}

/* Decides who sb's workload runs as: the config's `user` (resolved now; an unknown user
 * fails at start, as before), the journalled dynamic uid `was`, else a fresh one from the
 * pool when there is one; shared otherwise. 0, or -1 with *why (the pool is exhausted). */
static int choose_ident(struct sbx_sandbox *sb, const struct sbx_ident *was, const char **why) {
    struct sbx_uid_pool *pool = &sb->core->uids;
    uid_t uid;
    memset(&sb->ident, 0, sizeof sb->ident);
    if (sb->backend == NULL || !sb->backend->local_uid)
        return 0;
    if (sb->cfg.user != NULL) {
        sb->ident.kind = SBX_IDENT_NAMED;
        sb->ident.resolved = sbx_ident_lookup_user(sb->cfg.user, &sb->ident.uid, &sb->ident.gid) == 0;
        return 0;
    }
    if (was != NULL && was->kind == SBX_IDENT_DYNAMIC) {
        if (sbx_uid_pool_claim(pool, was->uid) == 0) {
            sb->ident = *was;
            return 0;
        }
        SBX_WARN("journalled uid already in use; the sandbox gets a new one", "id=%s uid=%u", sb->id,
                 (unsigned)was->uid);
    }
    if (!pool->enabled)
        return 0;
    if (sbx_uid_pool_take(pool, &uid) != 0) {
        *why = "no free uid in the sandbox uid range";
        if (errno == EAGAIN)
            errno = EUSERS; /* create answers {limit_reached, uids} */
        return -1;
    }
    sb->ident = (struct sbx_ident){SBX_IDENT_DYNAMIC, 1, uid, (gid_t)uid};
    return 0;
}

/* Gives back a dynamic uid sb holds (its record and folder are gone or never were). */
static void release_ident(struct sbx_sandbox *sb) {
    if (sb->ident.kind == SBX_IDENT_DYNAMIC)
        sbx_uid_pool_put(&sb->core->uids, sb->ident.uid);
    sb->ident.kind = SBX_IDENT_SHARED;
}

/* See sandbox.h. */
int sbx_sandbox_own_fd(const struct sbx_sandbox *sb, int fd) { return sbx_ident_own_fd(&sb->ident, fd); }

/* Makes the workspace folder sandboxd made (or finds it from an earlier run) private to
 * the workload: owned by its uid, mode 0700; and, when that uid is not ours, the sandbox's
 * folder searchable (0711) so that the path leads there, while everything else in it
 * (record, log, FIFOs) stays 0600 and sandboxd's. 0 or -1 (errno). */
static int own_workspace(struct sbx_sandbox *sb) {
    int rc = -1;
    int fd = open(sb->workspace, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        goto done;
    if (sbx_sandbox_own_fd(sb, fd) != 0 || fchmod(fd, 0700) != 0)
        goto done;
    if (sbx_ident_separate(&sb->ident) && chmod(sb->dir, 0711) != 0)
        goto done;
    rc = 0;
done:
    if (fd >= 0) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return rc;
}

static struct sbx_sandbox *sandbox_new(struct sbx_core *core, const char *id,
                                       struct sbx_config *cfg, const struct sbx_ident *was,
                                       int adopting, const char **why);

/* See sandbox.h. */
struct sbx_sandbox *sbx_sandbox_new(struct sbx_core *core, const char *id,
                                    struct sbx_config *cfg, const char **why) {
    return sandbox_new(core, id, cfg, NULL, 0, why);
}

/* See sandbox.h. A failed adoption keeps the folder (record, log, workspace) and the uid:
 * the workload may still run, and a later start may adopt it. */
struct sbx_sandbox *sbx_sandbox_new_as(struct sbx_core *core, const char *id,
                                       struct sbx_config *cfg, const struct sbx_ident *was,
                                       const char **why) {
    return sandbox_new(core, id, cfg, was, 1, why);
}

/* The body of sbx_sandbox_new(_as). sb->backend is NULL for a type without a backend. A
 * new sandbox's failure after the folder exists removes the folder and record again (an
 * adoption's leaves them), and leaves errno as the failure set it (EMFILE: the open-file
 * limit). If sb itself cannot be allocated, *cfg is neither freed nor zeroed. */
static struct sbx_sandbox *sandbox_new(struct sbx_core *core, const char *id,
                                       struct sbx_config *cfg, const struct sbx_ident *was,
                                       int adopting, const char **why) {
    struct sbx_sandbox *sb = calloc(1, sizeof *sb);
    char path[600];

    if (sb == NULL) {
        *why = "out of memory";
        sbx_config_free(cfg);
        memset(cfg, 0, sizeof *cfg);
        goto err;
    }
    sb->core = core;
    snprintf(sb->id, sizeof sb->id, "%s", id);
    sb->cfg = *cfg;
    memset(cfg, 0, sizeof *cfg);
    sb->status = SBX_ST_STARTING;
    sb->created_at = sbx_wall_ms();
    sb->backend = sbx_backend_for(sb->cfg.type);
    if (choose_ident(sb, was, why) != 0)
        goto err;
    *why = "cannot create the sandbox folder";
    if (sbx_journal_dir(core->state_dir, id, 1, sb->dir, sizeof sb->dir) != 0)
        goto err;
    if (sb->cfg.workspace != NULL) {
        /* The caller's own folder: used as it is (never chowned). */
        snprintf(sb->workspace, sizeof sb->workspace, "%s", sb->cfg.workspace);
    } else {
        snprintf(sb->workspace, sizeof sb->workspace, "%s/workspace", sb->dir);
        if (mkdir(sb->workspace, 0700) != 0 && errno != EEXIST)
            goto err;
        *why = "cannot give the workspace to the sandbox's user";
        if (own_workspace(sb) != 0)
            goto err;
    }
    snprintf(path, sizeof path, "%s/log", sb->dir);
    *why = "cannot open the log file";
    sb->logs = sbx_logbuf_open(path, core->log_max_bytes);
    if (sb->logs == NULL)
        goto err;
    if (sb->cfg.ttl_ms > 0) {
        sb->ttl_timer = evtimer_new(core->base, ttl_cb, sb);
        struct timeval tv = {(time_t)(sb->cfg.ttl_ms / 1000), (suseconds_t)(sb->cfg.ttl_ms % 1000) * 1000};
        if (sb->ttl_timer == NULL || evtimer_add(sb->ttl_timer, &tv) != 0)
            goto err;
    }
    registry_add(core, sb);
    return sb;
err:
    if (sb != NULL) {
        int saved = errno;
        sbx_logbuf_close(sb->logs);
        if (sb->ttl_timer != NULL)
            event_free(sb->ttl_timer);
        if (sb->dir[0] != '\0' && !adopting)
            sbx_journal_remove(core->state_dir, id);
        if (!adopting)
            release_ident(sb);
        sbx_config_free(&sb->cfg);
        free(sb);
        errno = saved;
    }
    return NULL;
}

/* Frees sb's timers, log buffer, config and sb itself. Registry,
 * backend state, waiters, journal and folder are the caller's business. */
static void free_memory_only(struct sbx_sandbox *sb) {
    if (sb->ttl_timer != NULL)
        event_free(sb->ttl_timer);
    if (sb->metrics_timer != NULL)
        event_free(sb->metrics_timer);
    if (sb->restart_timer != NULL)
        event_free(sb->restart_timer);
    sbx_logbuf_close(sb->logs);
    sbx_config_free(&sb->cfg);
    free(sb);
}

/* See sandbox.h. Callbacks run here: a health probe under way is
 * told unhealthy, and the backend's release answers pending execs.
 * sb->waiters must already be empty (they are not freed here). */
void sbx_sandbox_free(struct sbx_sandbox *sb) {
    struct sbx_core *core = sb->core;
    sb->destroying = 1;
    sbx_health_abort(sb);
    registry_remove(core, sb);
    sbx_subs_sandbox_gone(core, sb->id);
    if (sb->backend != NULL && sb->backend->release != NULL)
        sb->backend->release(sb);
    sbx_pause_gone(sb);
    if (sb->has_owner)
        sbx_core_demonitor(core, &sb->owner, sb->owner_ref, (size_t)sb->owner_ref_len);
    sbx_journal_remove(core->state_dir, sb->id);
    release_ident(sb);
    free_memory_only(sb);
}

/* See sandbox.h. Tells no waiter or subscriber: sb->waiters must already be empty. */
void sbx_sandbox_detach(struct sbx_sandbox *sb) {
    registry_remove(sb->core, sb);
    if (sb->backend != NULL && sb->backend->detach != NULL)
        sb->backend->detach(sb);
    sbx_pause_gone(sb);
    free_memory_only(sb);
}

/* The record: {sandbox, 1, Id, Type, Config, Status, CreatedAt, StartedAt, RestartCount,
 * ExitKind, ExitValue, Backend, Ident} (Ident: core/ident.h; older records lack it). */
void sbx_sandbox_journal(struct sbx_sandbox *sb) {
    ei_x_buff x;
    ei_x_new_with_version(&x);
    ei_x_encode_tuple_header(&x, 13);
    ei_x_encode_atom(&x, "sandbox");
    ei_x_encode_long(&x, 1);
    ei_x_encode_binary(&x, sb->id, (int)strlen(sb->id));
    ei_x_encode_atom(&x, sbx_type_name(sb->cfg.type));
    ei_x_append_buf(&x, sb->cfg.raw, (int)sb->cfg.raw_len);
    ei_x_encode_atom(&x, sbx_status_name(sb->status));
    ei_x_encode_longlong(&x, sb->created_at);
    ei_x_encode_longlong(&x, sb->started_at);
    ei_x_encode_long(&x, sb->restart_count);
    ei_x_encode_long(&x, sb->exit.kind);
    ei_x_encode_long(&x, sb->exit.value);
    if (sb->backend != NULL && sb->backend->journal != NULL)
        sb->backend->journal(sb, &x);
    else
        ei_x_encode_atom(&x, "undefined");
    sbx_ident_encode(&sb->ident, &x);
    if (sbx_journal_save(sb->core->state_dir, sb->id, x.buff, (size_t)x.index) != 0)
        SBX_WARN("cannot write the journal", "id=%s errno=%d", sb->id, errno);
    ei_x_free(&x);
}

/* The lower-case atom of a common signal; 'signal' for any other. */
static const char *signal_atom(int sig) {
    switch (sig) {
    case SIGHUP: return "sighup";
    case SIGINT: return "sigint";
    case SIGQUIT: return "sigquit";
    case SIGILL: return "sigill";
    case SIGABRT: return "sigabrt";
    case SIGBUS: return "sigbus";
    case SIGFPE: return "sigfpe";
    case SIGKILL: return "sigkill";
    case SIGSEGV: return "sigsegv";
    case SIGPIPE: return "sigpipe";
    case SIGALRM: return "sigalrm";
    case SIGTERM: return "sigterm";
    case SIGUSR1: return "sigusr1";
    case SIGUSR2: return "sigusr2";
    default: return "signal";
    }
}

/* Appends exit_status: the exit code, {signal, Atom}, or undefined. */
static void encode_exit(ei_x_buff *x, const struct sbx_exit *ex) {
    if (ex->kind == 1) {
        ei_x_encode_long(x, ex->value);
    } else if (ex->kind == 2) {
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_atom(x, "signal");
        ei_x_encode_atom(x, signal_atom(ex->value));
    } else {
        ei_x_encode_atom(x, "undefined");
    }
}

/* Appends the pair user => #{kind => dynamic | named | shared, uid, gid} for a workload
 * of host processes, user => undefined otherwise. */
static void encode_user(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct sbx_ident *id = &sb->ident;
    ei_x_encode_atom(x, "user");
    if (sb->backend == NULL || !sb->backend->local_uid ||
        (id->kind == SBX_IDENT_NAMED && !id->resolved)) {
        ei_x_encode_atom(x, "undefined");
        return;
    }
    int shared = id->kind == SBX_IDENT_SHARED;
    ei_x_encode_map_header(x, 3);
    ei_x_encode_atom(x, "kind");
    ei_x_encode_atom(x, shared ? "shared" : id->kind == SBX_IDENT_DYNAMIC ? "dynamic" : "named");
    ei_x_encode_atom(x, "uid");
    ei_x_encode_ulong(x, shared ? geteuid() : id->uid);
    ei_x_encode_atom(x, "gid");
    ei_x_encode_ulong(x, shared ? getegid() : id->gid);
}

/* See sandbox.h. Appends without a version byte; sb is only read. */
void sbx_sandbox_encode(const struct sbx_sandbox *sb, ei_x_buff *x) {
    ei_x_encode_map_header(x, 13);
    ei_x_encode_atom(x, "id");
    ei_x_encode_binary(x, sb->id, (int)strlen(sb->id));
    ei_x_encode_atom(x, "type");
    ei_x_encode_atom(x, sbx_type_name(sb->cfg.type));
    ei_x_encode_atom(x, "status");
    ei_x_encode_atom(x, sbx_status_name(sb->status));
    ei_x_encode_atom(x, "node");
    ei_x_encode_atom(x, sb->core->node->name);
    ei_x_encode_atom(x, "created_at");
    ei_x_encode_longlong(x, sb->created_at);
    ei_x_encode_atom(x, "started_at");
    if (sb->started_at > 0)
        ei_x_encode_longlong(x, sb->started_at);
    else
        ei_x_encode_atom(x, "undefined");
    ei_x_encode_atom(x, "config");
    ei_x_append_buf(x, sb->cfg.raw, (int)sb->cfg.raw_len);
    ei_x_encode_atom(x, "ref");
    if (sb->backend != NULL && sb->backend->ref != NULL)
        sb->backend->ref(sb, x);
    else
        ei_x_encode_atom(x, "undefined");
    ei_x_encode_atom(x, "ports");
    if (sb->backend != NULL && sb->backend->ports != NULL)
        sb->backend->ports(sb, x);
    else
        ei_x_encode_empty_list(x);
    ei_x_encode_atom(x, "labels");
    ei_x_encode_map_header(x, (long)sb->cfg.labels.n);
    for (size_t i = 0; i < sb->cfg.labels.n; i++) {
        ei_x_encode_binary(x, sb->cfg.labels.v[i].key, (int)strlen(sb->cfg.labels.v[i].key));
        ei_x_encode_binary(x, sb->cfg.labels.v[i].value, (int)strlen(sb->cfg.labels.v[i].value));
    }
    ei_x_encode_atom(x, "exit_status");
    encode_exit(x, &sb->exit);
    ei_x_encode_atom(x, "restart_count");
    ei_x_encode_long(x, sb->restart_count);
    encode_user(sb, x);
}

/* See sandbox.h. 0, or -1 when out of memory (nothing added). fn runs
 * once, from a later status change or destroy, never inside this call. */
int sbx_sandbox_wait(struct sbx_sandbox *sb, unsigned mask, uint64_t key, sbx_waiter_fn fn) {
    struct sbx_waiter *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -1;
    w->mask = mask;
    w->key = key;
    w->fn = fn;
    w->next = sb->waiters;
    sb->waiters = w;
    return 0;
}

/* Runs (and removes) the waiters whose mask has bit; ok tells them how it went. */
static void wake(struct sbx_sandbox *sb, unsigned bit, int ok) {
    struct sbx_waiter **pp = &sb->waiters;
    while (*pp != NULL) {
        struct sbx_waiter *w = *pp;
        if (w->mask & bit) {
            *pp = w->next;
            w->fn(sb, w->key, ok);
            free(w);
        } else {
            pp = &w->next;
        }
    }
}

/* See sandbox.h. The callbacks run here, re-entrantly. */
void sbx_sandbox_fail_waiters(struct sbx_sandbox *sb) { wake(sb, ~0u, 0); }

/* See sandbox.h. reason stays the caller's. While destroying the
 * journal is not rewritten. Waiter callbacks run last, re-entrantly. */
void sbx_sandbox_set_status(struct sbx_sandbox *sb, enum sbx_status to, const char *reason,
                            size_t reason_len) {
    enum sbx_status from = sb->status;
    if (from == to)
        return;
    sb->status = to;
    if (to == SBX_ST_RUNNING && from != SBX_ST_PAUSED) /* a resume is no new start */
        sb->started_at = sbx_wall_ms();
    SBX_INFO("sandbox status", "id=%s from=%s to=%s", sb->id, sbx_status_name(from),
             sbx_status_name(to));
    if (!sb->destroying)
        sbx_sandbox_journal(sb);
    ei_x_buff p;
    ei_x_new(&p);
    ei_x_encode_map_header(&p, 4);
    ei_x_encode_atom(&p, "from");
    ei_x_encode_atom(&p, sbx_status_name(from));
    ei_x_encode_atom(&p, "to");
    ei_x_encode_atom(&p, sbx_status_name(to));
    ei_x_encode_atom(&p, "ts");
    ei_x_encode_longlong(&p, sbx_wall_ms());
    ei_x_encode_atom(&p, "reason");
    if (reason != NULL)
        ei_x_append_buf(&p, reason, (int)reason_len);
    else
        ei_x_encode_atom(&p, "normal");
    sbx_subs_publish(sb->core, sb, SBX_TOPIC_STATUS, p.buff, (size_t)p.index, 4);
    ei_x_free(&p);
    sbx_sandbox_metrics_timer(sb);
    /* Waiters for running also learn of failure: stopped, exited, error. */
    if ((to == SBX_ST_STOPPED && !sb->restart_after_stop) || to == SBX_ST_EXITED ||
        to == SBX_ST_ERROR)
        wake(sb, 1u << SBX_ST_RUNNING, 0);
    wake(sb, 1u << to, 1);
}

/* See sandbox.h. */
void sbx_sandbox_set_status_atom(struct sbx_sandbox *sb, enum sbx_status to, const char *atom) {
    ei_x_buff r;
    ei_x_new(&r);
    ei_x_encode_atom(&r, atom);
    sbx_sandbox_set_status(sb, to, r.buff, (size_t)r.index);
    ei_x_free(&r);
}

/* Status error with {start_failed, Detail}; the error is kept in sb->start_err. */
static void start_failed(struct sbx_sandbox *sb, const struct sbx_err *err) {
    ei_x_buff r;
    sb->start_err = *err;
    ei_x_new(&r);
    ei_x_encode_tuple_header(&r, 2);
    ei_x_encode_atom(&r, "start_failed");
    ei_x_encode_binary(&r, err->detail, (int)strlen(err->detail));
    sbx_sandbox_set_status(sb, SBX_ST_ERROR, r.buff, (size_t)r.index);
    ei_x_free(&r);
}

/* See sandbox.h. Needs a backend (sb->backend not NULL).
 * Status changes run waiter callbacks inside this call. */
int sbx_sandbox_start(struct sbx_sandbox *sb, struct sbx_err *err) {
    if (sb->status != SBX_ST_STARTING)
        sbx_sandbox_set_status_atom(sb, SBX_ST_STARTING, "start");
    sb->stop_requested = 0;
    sb->exit.kind = 0;
    memset(&sb->start_err, 0, sizeof sb->start_err);
    sbx_pause_before_start(sb);
    int rc = sb->backend->start(sb, err);
    if (rc < 0) {
        start_failed(sb, err);
        return -1;
    }
    if (rc == SBX_START_PENDING)
        return SBX_START_PENDING;
    sbx_sandbox_set_status(sb, SBX_ST_RUNNING, NULL, 0);
    return 0;
}

/* See sandbox.h. Ignored unless the sandbox is starting. */
void sbx_sandbox_started(struct sbx_sandbox *sb, const struct sbx_err *err) {
    if (sb->status != SBX_ST_STARTING)
        return;
    if (err != NULL)
        start_failed(sb, err);
    else
        sbx_sandbox_set_status(sb, SBX_ST_RUNNING, NULL, 0);
}

/* Restart-policy timer: starts the workload again, unless the
 * sandbox is being destroyed or is no longer exited. */
static void restart_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_sandbox *sb = arg;
    struct sbx_err err;
    (void)fd;
    (void)what;
    if (sb->destroying || sb->status != SBX_ST_EXITED)
        return;
    memset(&err, 0, sizeof err);
    sb->restart_count++;
    sbx_sandbox_start(sb, &err);
}

/* The restart policy after the workload ended by itself. */
static void maybe_restart(struct sbx_sandbox *sb) {
    int failed = sb->exit.kind == 2 || (sb->exit.kind == 1 && sb->exit.value != 0) ||
                 sb->exit.kind == 0;
    int want = sb->cfg.restart == SBX_RESTART_ALWAYS ||
               (sb->cfg.restart == SBX_RESTART_ON_FAILURE && failed);
    if (!want || sb->destroying || sb->restart_count >= sb->cfg.max_restarts)
        return;
    /* Back off: 100 ms doubling per restart, at most 5 s. */
    int64_t ms = 100;
    for (int i = 0; i < sb->restart_count && ms < 5000; i++)
        ms *= 2;
    if (ms > 5000)
        ms = 5000;
    if (sb->restart_timer == NULL)
        sb->restart_timer = evtimer_new(sb->core->base, restart_cb, sb);
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    if (sb->restart_timer != NULL)
        evtimer_add(sb->restart_timer, &tv);
}

/* The last step of destroy, once the backend removed what it made: wakes the
 * SBX_WAIT_GONE waiters, fails the others, frees sb. sb is invalid on return. */
static void destroy_removed(struct sbx_sandbox *sb) {
    SBX_INFO("sandbox destroyed", "id=%s reason=%s", sb->id, sb->stop_reason ? sb->stop_reason : "destroyed");
    wake(sb, SBX_WAIT_GONE, 1);
    sbx_sandbox_fail_waiters(sb);
    sbx_sandbox_free(sb);
}

/* Destroy after the workload ended: the backend's remove step (if any), then the rest. */
static void finish_destroy(struct sbx_sandbox *sb) {
    if (sb->backend != NULL && sb->backend->remove != NULL)
        sb->backend->remove(sb, destroy_removed);
    else
        destroy_removed(sb);
}

/* See sandbox.h. Runs waiter callbacks; when destroying, sb is freed before this returns. */
void sbx_sandbox_ended(struct sbx_sandbox *sb, const struct sbx_exit *ex, int oom) {
    if (ex->kind != 0)
        sb->exit = *ex;
    if (sb->stop_requested) {
        sb->stop_requested = 0;
        sbx_sandbox_set_status_atom(sb, SBX_ST_STOPPED,
                                    sb->stop_reason ? sb->stop_reason : "stopped");
        if (sb->destroying) {
            finish_destroy(sb);
            return;
        }
        if (sb->restart_after_stop) {
            struct sbx_err err;
            memset(&err, 0, sizeof err);
            sb->restart_after_stop = 0;
            sbx_sandbox_start(sb, &err);
        }
        return;
    }
    ei_x_buff r;
    ei_x_new(&r);
    if (oom) {
        ei_x_encode_atom(&r, "oom");
    } else if (ex->kind == 1) {
        ei_x_encode_tuple_header(&r, 2);
        ei_x_encode_atom(&r, "exit");
        ei_x_encode_long(&r, ex->value);
    } else if (ex->kind == 2) {
        ei_x_encode_tuple_header(&r, 2);
        ei_x_encode_atom(&r, "signal");
        ei_x_encode_atom(&r, signal_atom(ex->value));
    } else {
        ei_x_encode_atom(&r, "exited");
    }
    sbx_sandbox_set_status(sb, SBX_ST_EXITED, r.buff, (size_t)r.index);
    ei_x_free(&r);
    if (sb->destroying) {
        finish_destroy(sb);
        return;
    }
    maybe_restart(sb);
}

/* See sandbox.h. Needs a backend. If alive() says the workload is gone, its end is handled
 * here at once: waiters run and, when destroying, sb is freed before this returns. */
void sbx_sandbox_stop(struct sbx_sandbox *sb, const char *reason) {
    sb->stop_requested = 1;
    sb->stop_reason = reason;
    if (sb->restart_timer != NULL)
        evtimer_del(sb->restart_timer);
    if (!sb->backend->alive(sb)) {
        struct sbx_exit none = {0, 0};
        sbx_sandbox_ended(sb, &none, 0);
        return;
    }
    sbx_pause_before_stop(sb);
    sbx_sandbox_set_status_atom(sb, SBX_ST_STOPPING, reason);
    sb->backend->stop(sb, sb->core->stop_grace_ms);
}

/* See sandbox.h. Idempotent. sb may be freed before this returns
 * (workload already gone), else once the backend reports the end. */
void sbx_sandbox_destroy(struct sbx_sandbox *sb, const char *reason) {
    if (sb->destroying)
        return;
    sb->destroying = 1;
    if (sb->ttl_timer != NULL)
        evtimer_del(sb->ttl_timer);
    sbx_trace_sandbox_gone(sb->core, sb->id); /* while the node still answers */
    sbx_sandbox_stop(sb, reason);
}

/* Output: into the log buffer; a log event per chunk read, with the complete lines. */
struct out_ctx {
    ei_x_buff data;
    int n;
};

/* Logbuf emit callback: appends the line and its newline to the pending log event. */
static void collect_line(void *arg, int64_t ts, enum sbx_stream stream, const char *data, size_t len) {
    struct out_ctx *c = arg;
    (void)ts;
    (void)stream;
    ei_x_append_buf(&c->data, data, (int)len);
    ei_x_append_buf(&c->data, "\n", 1);
    c->n++;
}

/* See sandbox.h. data stays the caller's. A log event goes out
 * only if a subscriber wants logs and the chunk completed a line. */
void sbx_sandbox_output(struct sbx_sandbox *sb, int stream, const char *data, size_t len) {
    int64_t ts = sbx_wall_ms();
    int wanted = sbx_subs_wanted(sb->core, sb, SBX_TOPIC_LOG);
    struct out_ctx c = {.n = 0};
    ei_x_new(&c.data);
    sbx_logbuf_feed(sb->logs, ts, (enum sbx_stream)stream, data, len, wanted ? collect_line : NULL, &c);
    if (wanted && c.n > 0) {
        ei_x_buff p;
        ei_x_new(&p);
        ei_x_encode_map_header(&p, 3);
        ei_x_encode_atom(&p, "ts");
        ei_x_encode_longlong(&p, ts);
        ei_x_encode_atom(&p, "stream");
        ei_x_encode_atom(&p, sbx_stream_name(stream));
        ei_x_encode_atom(&p, "data");
        ei_x_encode_binary(&p, c.data.buff, c.data.index);
        sbx_subs_publish(sb->core, sb, SBX_TOPIC_LOG, p.buff, (size_t)p.index, 3);
        ei_x_free(&p);
    }
    ei_x_free(&c.data);
}

/* Publishes a processes event when the list changed (pid, name, status). */
static void publish_processes(struct sbx_sandbox *sb, const char *term, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)term[i]) * 1099511628211ull;
    if (h != sb->processes_hash) {
        sb->processes_hash = h;
        sbx_subs_publish(sb->core, sb, SBX_TOPIC_PROCESSES, term, len, -1);
    }
}

/* Answers of the asynchronous queries the metrics timer started (key 0). */
static void async_metrics_done(struct sbx_sandbox *sb, uint64_t key, const char *term, size_t len,
                               const struct sbx_err *err) {
    (void)key;
    if (term != NULL && err == NULL)
        sbx_subs_publish(sb->core, sb, SBX_TOPIC_METRICS, term, len, 5);
}

static void async_processes_done(struct sbx_sandbox *sb, uint64_t key, const char *term,
                                 size_t len, const struct sbx_err *err) {
    (void)key;
    if (term != NULL && err == NULL)
        publish_processes(sb, term, len);
}

/* Metrics timer: publishes a metrics event, and a processes event
 * when the list changed, to whoever wants them; then re-arms. */
static void metrics_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_sandbox *sb = arg;
    struct sbx_err err;
    (void)fd;
    (void)what;
    memset(&err, 0, sizeof err);
    if (sbx_subs_wanted(sb->core, sb, SBX_TOPIC_METRICS)) {
        if (sb->backend->metrics_async != NULL) {
            sb->backend->metrics_async(sb, 0, async_metrics_done, &err);
        } else {
            ei_x_buff p;
            ei_x_new(&p);
            if (sb->backend->metrics(sb, &p, &err) == 0)
                sbx_subs_publish(sb->core, sb, SBX_TOPIC_METRICS, p.buff, (size_t)p.index, 5);
            ei_x_free(&p);
        }
    }
    if (sbx_subs_wanted(sb->core, sb, SBX_TOPIC_PROCESSES)) {
        if (sb->backend->processes_async != NULL) {
            sb->backend->processes_async(sb, 0, async_processes_done, &err);
        } else {
            ei_x_buff p;
            ei_x_new(&p);
            if (sb->backend->processes(sb, &p, &err) == 0)
                publish_processes(sb, p.buff, (size_t)p.index);
            ei_x_free(&p);
        }
    }
    sbx_sandbox_metrics_timer(sb);
}

/* See sandbox.h. Armed only while running and wanted; a pending timer is left as it is. */
void sbx_sandbox_metrics_timer(struct sbx_sandbox *sb) {
    int want = sb->status == SBX_ST_RUNNING &&
               (sbx_subs_wanted(sb->core, sb, SBX_TOPIC_METRICS) ||
                sbx_subs_wanted(sb->core, sb, SBX_TOPIC_PROCESSES));
    if (!want) {
        if (sb->metrics_timer != NULL)
            evtimer_del(sb->metrics_timer);
        return;
    }
    if (sb->metrics_timer == NULL)
        sb->metrics_timer = evtimer_new(sb->core->base, metrics_cb, sb);
    if (sb->metrics_timer == NULL)
        return;
    /* Sampled only for the event tap (the HTTP side's picture): at most
     * SBX_TAP_SAMPLES_PER_S samples a second over all sandboxes, so that thousands of
     * sandboxes do not keep the loop busy reading cgroups (4,300 at 1 s each did). A
     * subscriber that comes meanwhile gets the sandbox's own interval at once. */
    int tap_only = !sbx_subs_wanted_by_subscriber(sb->core, sb, SBX_TOPIC_METRICS) &&
                   !sbx_subs_wanted_by_subscriber(sb->core, sb, SBX_TOPIC_PROCESSES);
    if (evtimer_pending(sb->metrics_timer, NULL)) {
        if (tap_only || !sb->metrics_stretched)
            return;
        evtimer_del(sb->metrics_timer);
    }
    int64_t ms = sb->cfg.metrics_interval_ms > 0 ? sb->cfg.metrics_interval_ms : 1000;
    int64_t spread = (int64_t)sb->core->count * 1000 / SBX_TAP_SAMPLES_PER_S;
    sb->metrics_stretched = tap_only && spread > ms;
    if (sb->metrics_stretched)
        ms = spread;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(sb->metrics_timer, &tv);
}
