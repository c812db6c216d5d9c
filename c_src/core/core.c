/* The core: state directory, SIGCHLD, the monitoring process, adoption at start and the
 * shutdown policy at stop. */
#define _GNU_SOURCE
#include "core/core.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/docker/docker.h"
#include "backends/process/process.h"
#include "core/journal.h"
#include "core/journal_sync.h"
#include "core/pause.h"
#include "core/sandbox.h"
#include "core/subs.h"
#include "trace/trace.h"
#include "dist/control.h"
#include "dist/node.h"
#include "dist/term_check.h"
#include "util/fdlimit.h"
#include "util/log.h"

static struct sbx_core *the_core;

/* See core.h. NULL before sbx_core_start has succeeded and after sbx_core_stop. */
struct sbx_core *sbx_core_get(void) { return the_core; }

/* Sends MONITOR_P (op 19) or DEMONITOR_P (op 20) from the core's process to
 * who; dropped silently if who's node is not connected. ref stays the caller's. */
static void send_monitor(struct sbx_core *core, int op, const struct sbx_rpid *who,
                         const char *ref, size_t ref_len) {
    ei_x_buff ctl;
    ei_x_new_with_version(&ctl);
    ei_x_encode_tuple_header(&ctl, 4);
    ei_x_encode_long(&ctl, op);
    sbx_node_encode_self_pid(core->node, &ctl, core->proc);
    if (sbx_node_encode_rpid(core->node, &ctl, who) == 0) {
        ei_x_append_buf(&ctl, ref, (int)ref_len);
        sbx_node_send(core->node, who->conn_id, &ctl, NULL);
    }
    ei_x_free(&ctl);
}

/* See core.h. ref_out is appended to only on success. */
int sbx_core_monitor(struct sbx_core *core, const struct sbx_rpid *who, ei_x_buff *ref_out) {
    if (sbx_node_conn_by_id(core->node, who->conn_id) == NULL)
        return -1;
    sbx_node_make_ref(core->node, ref_out);
    send_monitor(core, 19, who, ref_out->buff, (size_t)ref_out->index);
    return 0;
}

/* See core.h. Fire and forget: nothing is sent if who's node is gone. */
void sbx_core_demonitor(struct sbx_core *core, const struct sbx_rpid *who, const char *ref,
                        size_t ref_len) {
    send_monitor(core, 20, who, ref, ref_len);
}

/* {'DOWN', Ref, process, Pid, Reason}: a subscriber or an owner is gone. */
static void core_message(struct sbx_proc *p, const struct sbx_rpid *from, const char *msg, size_t len) {
    struct sbx_core *core = p->data;
    int idx = 0, version, arity;
    char atom[MAXATOMLEN_UTF8];
    const char *ref;
    size_t ref_len;
    (void)from;
    (void)len;
    if (ei_decode_version(msg, &idx, &version) != 0 || ei_decode_tuple_header(msg, &idx, &arity) != 0 ||
        arity != 5 || sbx_decode_atom(msg, &idx, atom) != 0 || strcmp(atom, "DOWN") != 0 ||
        sbx_term_span(msg, &idx, &ref, &ref_len) != 0)
        return;
    if (sbx_subs_check_answer(core, msg) || sbx_subs_remove(core, ref, ref_len, 0))
        return;
    for (struct sbx_sandbox *sb = core->first; sb != NULL; sb = sb->next) {
        if (sb->has_owner && sbx_ref_equal(sb->owner_ref, (size_t)sb->owner_ref_len, ref, ref_len)) {
            sb->has_owner = 0;
            sbx_sandbox_destroy(sb, "owner_down");
            return;
        }
    }
}

/* The core process's conn_down op: drops the subscriptions held through
 * the connection and destroys the sandboxes whose owner was behind it.
 * Runs inside sbx_node_conn_down's walk of the process table. */
static void core_conn_down(struct sbx_proc *p, uint64_t conn_id) {
    struct sbx_core *core = p->data;
    sbx_subs_conn_down(core, conn_id);
    struct sbx_sandbox *next;
    for (struct sbx_sandbox *sb = core->first; sb != NULL; sb = next) {
        next = sb->next;
        if (sb->has_owner && sb->owner.conn_id == conn_id) {
            sb->has_owner = 0;
            sbx_sandbox_destroy(sb, "owner_down");
        }
    }
}

static const struct sbx_proc_ops core_ops = {.message = core_message, .conn_down = core_conn_down};

/* SIGCHLD, as a loop event (and once at start): reaps every exited child,
 * adopted orphans included, and hands each to the process backend. */
static void sigchld_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_core *core = arg;
    int status;
    pid_t pid;
    (void)fd;
    (void)what;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
        sbx_process_reaped(core, pid, status);
}

/* Re-creates a sandbox from its journal record and re-attaches to its workload. */
static void adopt_one(void *arg, const char *id, const char *buf, size_t len) {
    struct sbx_core *core = arg;
    size_t used;
    int idx = 1, arity;
    char atom[MAXATOMLEN_UTF8];
    long ver, restarts, ekind, evalue;
    long long created, started;
    struct sbx_config cfg;
    struct sbx_badarg bad;
    enum sbx_type type;
    const char *why;

    memset(&cfg, 0, sizeof cfg);
    if (len < 2 || (unsigned char)buf[0] != 131 ||
        sbx_term_check((const unsigned char *)buf + 1, len - 1, &used) != 0 ||
        ei_decode_tuple_header(buf, &idx, &arity) != 0 || (arity != 12 && arity != 13) ||
        sbx_decode_atom(buf, &idx, atom) != 0 || strcmp(atom, "sandbox") != 0 ||
        ei_decode_long(buf, &idx, &ver) != 0 || ver != 1 || ei_skip_term(buf, &idx) != 0 ||
        sbx_decode_type(buf, &idx, &type, &bad) != 0) {
        SBX_WARN("unreadable journal record, removed", "id=%s", id);
        sbx_journal_remove(core->state_dir, id);
        return;
    }
    const struct sbx_backend *be = sbx_backend_for(type);
    if (be == NULL) {
        SBX_WARN("journal record for a backend this build lacks; left alone", "id=%s type=%s", id,
                 sbx_type_name(type));
        return;
    }
    if (sbx_config_decode(buf, &idx, type, be->config, &cfg, &bad) != 0) {
        SBX_WARN("unreadable journal record, removed", "id=%s", id);
        sbx_config_free(&cfg);
        sbx_journal_remove(core->state_dir, id);
        return;
    }
    char status[MAXATOMLEN_UTF8];
    if (sbx_decode_atom(buf, &idx, status) != 0 || ei_decode_longlong(buf, &idx, &created) != 0 ||
        ei_decode_longlong(buf, &idx, &started) != 0 || ei_decode_long(buf, &idx, &restarts) != 0 ||
        ei_decode_long(buf, &idx, &ekind) != 0 || ei_decode_long(buf, &idx, &evalue) != 0) {
        sbx_config_free(&cfg);
        return;
    }
    /* The workload's uid comes after the backend's part (records since dynamic uids). */
    struct sbx_ident was, *wasp = NULL;
    int j = idx;
    if (arity == 13 && ei_skip_term(buf, &j) == 0 && sbx_ident_decode(buf, &j, &was) == 0)
        wasp = &was;
    struct sbx_sandbox *sb = sbx_sandbox_new_as(core, id, &cfg, wasp, &why);
    if (sb == NULL) {
        SBX_WARN("cannot adopt sandbox", "id=%s why=\"%s\"", id, why);
        return;
    }
    sb->created_at = created;
    sb->started_at = started;
    sb->restart_count = (int)restarts;
    sb->exit.kind = (int)ekind;
    sb->exit.value = (int)evalue;
    int was_live = strcmp(status, "running") == 0 || strcmp(status, "starting") == 0 ||
                   strcmp(status, "stopping") == 0 || strcmp(status, "paused") == 0;
    int adopted = sb->backend != NULL && sb->backend->adopt != NULL &&
                  sb->backend->adopt(sb, buf, idx);
    if (adopted && was_live) {
        sb->status = sbx_pause_adopted_status(sb, strcmp(status, "paused") == 0);
        SBX_INFO("sandbox adopted", "id=%s", id);
    } else {
        for (int s = SBX_ST_STARTING; s <= SBX_ST_ERROR; s++)
            if (strcmp(status, sbx_status_name((enum sbx_status)s)) == 0)
                sb->status = (enum sbx_status)s;
        if (was_live)
            sb->status = SBX_ST_EXITED; /* it ended while sandboxd was away */
    }
    sbx_sandbox_journal(sb);
}

/* With a uid per sandbox: the state directory and its sandboxes/ become searchable (0711,
 * never listable) so that a workload reaches its own workspace by path; nothing else in
 * them is open to it (records, logs and FIFOs are 0600, workspaces 0700 and each its own
 * sandbox's). A parent that others cannot search is reported: workloads then still start
 * in their workspace, but cannot reach it by its path (e.g. $HOME). */
static void open_state_dir(const char *state_dir) {
    char path[PATH_MAX];
    struct stat st;
    if (snprintf(path, sizeof path, "%s/sandboxes", state_dir) >= (int)sizeof path)
        return;
    if (chmod(state_dir, 0711) != 0 || chmod(path, 0711) != 0)
        SBX_WARN("cannot open the state directory for searching", "state_dir=%s errno=%d",
                 state_dir, errno);
    snprintf(path, sizeof path, "%s", state_dir);
    for (char *slash = strrchr(path, '/'); slash != NULL; slash = strrchr(path, '/')) {
        *slash = '\0';
        const char *dir = path[0] != '\0' ? path : "/";
        if (stat(dir, &st) == 0 && !(st.st_mode & S_IXOTH)) {
            SBX_WARN("sandbox users cannot reach their workspaces by path: a parent of the "
                     "state directory is not searchable by others (use --state-dir elsewhere, "
                     "e.g. /var/lib/sandboxd)", "dir=%s", dir);
            return;
        }
        if (path[0] == '\0')
            return;
    }
}

/* See core.h. the_core is set only once the monitoring process and the
 * SIGCHLD event exist. After -1 the process stays in the node's table
 * (freed with it); sbx_core_stop is safe to call and frees the event. */
int sbx_core_start(struct sbx_core *core, struct sbx_node *node,
                   const struct sbx_core_config *cfg, const char **why) {
    memset(core, 0, sizeof *core);
    core->node = node;
    core->base = node->base;
    snprintf(core->state_dir, sizeof core->state_dir, "%s", cfg->state_dir);
    core->shutdown_destroy = cfg->shutdown_destroy;
    core->log_max_bytes = cfg->log_max_bytes;
    core->max_sandboxes = cfg->max_sandboxes;
    core->max_subscribers = cfg->max_subscribers;
    core->stop_grace_ms = cfg->stop_grace_ms;
    *why = "cannot create the state directory";
    if (sbx_journal_init(core->state_dir) != 0)
        return -1;
    *why = "out of memory";
    if (sbx_uid_pool_init(&core->uids, cfg->dynamic_uids && geteuid() == 0, cfg->uid_first,
                          cfg->uid_last) != 0)
        return -1;
    if (core->uids.enabled)
        open_state_dir(core->state_dir);
    /* Other sandboxd instances of this host take uids from the same range. */
    if (sbx_uid_pool_share(&core->uids, SBX_UID_CLAIMS_DIR, node->name) != 0)
        SBX_WARN("uid claims not shared: keep other sandboxd instances of this host on other "
                 "--uid-range", "dir=%s errno=%d", SBX_UID_CLAIMS_DIR, errno);
    /* Records are made durable off the loop, one syncfs per batch (group commit). */
    if (sbx_journal_sync_start(core->state_dir) != 0)
        SBX_WARN("journal syncer not started: records are synced on the loop", "errno=%d", errno);
    /* Orphans of sandboxes are reparented to us, reaped, never zombies. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    sbx_cgroup_detect(&core->cg);
    *why = "out of memory";
    core->proc = sbx_proc_spawn(&node->procs, &core_ops, core);
    if (core->proc == NULL)
        return -1;
    core->sigchld = evsignal_new(core->base, SIGCHLD, sigchld_cb, core);
    if (core->sigchld == NULL || event_add(core->sigchld, NULL) != 0)
        return -1;
    the_core = core;
    core->fds_at_start = sbx_fdlimit_in_use();
    int n = sbx_journal_each(core->state_dir, adopt_one, core);
    /* Docker: probe the engine; its first answer reconciles the adopted containers. */
    sbx_docker_init(core);
    SBX_INFO("core started", "state_dir=%s cgroups=%s journalled=%d", core->state_dir,
             core->cg.version == SBX_CG_V1 ? "v1" : core->cg.version == SBX_CG_V2 ? "v2" : "none", n);
    /* Children that ended while nobody listened. */
    sigchld_cb(-1, 0, core);
    return 0;
}

/* See core.h. Every sandbox's waiters fail first (their calls are answered). Safe on a
 * zeroed core and after a failed start; the core's process is freed with the node's table. */
void sbx_core_stop(struct sbx_core *core) {
    if (core->node == NULL)
        return;
    sbx_trace_free_all(core);
    /* Destroy policy: kill every workload now, then free. Keep policy: leave them. */
    while (core->first != NULL) {
        struct sbx_sandbox *sb = core->first;
        sbx_sandbox_fail_waiters(sb);
        if (core->shutdown_destroy) {
            sb->destroying = 1;
            if (sb->backend != NULL && sb->backend->alive(sb)) {
                sb->backend->stop(sb, 0);
            }
            sbx_sandbox_free(sb);
        } else {
            /* Unregister without touching the workload or its folder. */
            sbx_sandbox_detach(sb);
        }
    }
    sbx_subs_free_all(core);
    sbx_docker_stop(core);
    /* The node's own group (sandboxd/<node>) goes when no sandbox is left in it; a
     * non-empty one (keep policy) stays for the next start. */
    if (core->cg.version != SBX_CG_NONE) {
        char name[400];
        struct sbx_cgroup cg;
        snprintf(name, sizeof name, "sandboxd/%s", core->node->name);
        sbx_cgroup_paths(&core->cg, name, &cg);
        (void)sbx_cgroup_remove(&cg);
    }
    if (core->sigchld != NULL)
        event_free(core->sigchld);
    core->sigchld = NULL;
    sbx_uid_pool_free(&core->uids);
    /* Whatever the last turns wrote is durable before sandboxd exits. */
    sbx_journal_sync_stop();
    the_core = NULL;
}
