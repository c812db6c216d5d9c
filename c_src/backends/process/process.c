/* The process backend: a sandbox is a session of local processes in its own cgroups.
 *
 * Output: the workload's stdout and stderr are FIFOs in the sandbox's folder that the
 * workload holds open read-write, so it never gets SIGPIPE while sandboxd is away (it
 * blocks once the FIFO is full instead) and a restarted sandboxd reopens them and reads
 * on. An idle sandbox holds no descriptor of sandboxd's: one shared inotify descriptor
 * tells of writes (fifowatch.h) and a FIFO is opened only to drain it. A descriptor holder
 * (fdhold.h, a child process) keeps a read-write descriptor on each FIFO until the
 * workload is gone and its output drained, so that neither output written just before it
 * exits is lost nor a FIFO reports end-of-file.
 *
 * Lifetime: the main process is a child of sandboxd (reaped on SIGCHLD) or, after a
 * restart of sandboxd, an adopted process polled about once a second (signal 0, and its
 * start time every ADOPT_STAT_EVERY polls, which also sees a zombie). When it
 * ends, or on stop, what is left of the sandbox (found through the cgroup, else the
 * process tree and session) gets SIGTERM and, after the grace period, SIGKILL; once
 * nothing is left the core is told. */
#define _GNU_SOURCE
#include "backends/process/process_config.h"
#include "backends/process/process.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/process/cgroup.h"
#include "backends/process/fdhold.h"
#include "backends/process/fifowatch.h"
#include "backends/process/freezer.h"
#include "backends/process/procfs.h"
#include "backends/process/spawn.h"
#include "backends/process/uidsweep.h"
#include "core/core.h"
#include "core/logbuf.h"
#include "core/sandbox.h"
#include "dist/node.h"
#include "util/clock.h"
#include "util/fdreserve.h"
#include "util/log.h"
#include "util/psstate.h"

#define WATCH_MS 50
#define RM_GIVE_UP_MS 30000
#define SWEEP_MS 2000
#define SWEEPS_MAX 3
#define MAX_PIDS 4096
#define READ_CHUNK 65536
/* Adopted workloads: ms between liveness polls, and every how many polls its start time is
 * read from /proc (the other polls only send signal 0, cheap with 10,000 of them). */
#define ADOPT_POLL_MS 1000
#define ADOPT_STAT_EVERY 3
/* A drain that found no descriptor free tries again after this many ms. */
#define DRAIN_RETRY_MS 100

struct pexec {
    struct pexec *next;
    struct sbx_sandbox *sb;
    pid_t pid;
    uint64_t key;
    sbx_exec_done_fn done;
    int fd[2];               /* stdout, stderr read ends */
    struct event *ev[2];
    char *buf[2];
    size_t len[2];
    size_t max;
    int truncated;
    int in_fd;
    struct event *in_ev;
    char *in_data;
    size_t in_len, in_off;
    struct event *timer;
    int reaped;
    int status;
    int timed_out;
    int64_t start_ms;
};

struct pstate {
    struct sbx_sandbox *sb;
    struct pstate *next, *prev; /* all_states */
    const struct sbx_process_hooks *hooks; /* a backend built on this one (process.h), or NULL */
    pid_t pid;                /* main process (0 when none) */
    uint64_t starttime;
    pid_t sid;
    int adopted;              /* not our child: watched by polling */
    int main_done;
    int main_status;
    struct sbx_cgroup cg;
    int has_cg;
    uint64_t oom_base;
    int wd[2];                /* the FIFOs' watches (fifowatch.h), -1 when none */
    struct sbx_fdhold_ref hold; /* a holder's read-write descriptors on both FIFOs */
    struct event *drain_ev;   /* a drain left for later (more to read, or no descriptor) */
    unsigned polls;           /* adopted: liveness polls so far */
    struct event *watch;
    int ending;               /* the main process ended or stop was asked: draining */
    int poll_ms;              /* while ending: the next poll, growing from 1 ms to WATCH_MS */
    int64_t kill_at;          /* mono ms when SIGKILL follows SIGTERM */
    int killed;
    struct pexec *execs;
    int own_uid;              /* the sandbox has a dynamic uid: any process of it is its */
    uid_t uid;
    gid_t gid;
    int confirm_fd;           /* the exec confirmation of a start under way, or -1 */
    struct event *confirm_ev;
    int end_deferred;         /* the main process was reaped before its confirmation */
    /* destroy's remove step (ps_remove): cgroup emptied and removed from a timer, then
     * the uid swept by a helper process; removed(sb) once both are done. */
    void (*removed)(struct sbx_sandbox *sb);
    struct event *rm_timer;
    int rm_ms;
    int64_t rm_give_up;
    pid_t sweeper;            /* the uid helper (sbx_spawn_kill_uid_start), or 0 */
    int swept;                /* the uid was swept at destroy */
    int sweeps;               /* helpers started (one held up is killed and started again) */
    int rm_tried;             /* ps_remove ran: release never waits for the cgroup */
    int rm_had_cg;            /* the sandbox had a cgroup when ps_remove began */
};

/* Every state of the process machinery (plain process sandboxes and the backends built on
 * it), for the reaper: sb->bstate alone does not say whose state a sandbox holds. */
static struct pstate *all_states;

/* sb's backend state: NULL before the first start or adopt, and after release or detach. */
static struct pstate *ps_of(struct sbx_sandbox *sb) { return sb->bstate; }

/* Fills err as {limit_reached, open_files} when e means out of descriptors: 1, else 0. */
static int fd_limit_err(struct sbx_err *err, int e) {
    if (!sbx_fd_exhausted(e))
        return 0;
    err->reason_atom = "limit_reached";
    snprintf(err->detail, sizeof err->detail, "open_files");
    return 1;
}

/* Fills err as a backend error; fmt takes a, then strerror(e). Out of descriptors is
 * {limit_reached, open_files}. */
static void set_err(struct sbx_err *err, const char *fmt, const char *a, int e) {
    if (fd_limit_err(err, e))
        return;
    err->reason_atom = "backend";
    snprintf(err->detail, sizeof err->detail, fmt, a, strerror(e));
}

/* The sandbox's processes: from the cgroup when there is one, else its tree. */
static int list_pids(struct pstate *ps, pid_t *out, size_t cap) {
    if (ps->has_cg)
        return sbx_cgroup_pids(&ps->cg, out, cap);
    if (ps->pid <= 0)
        return 0;
    return sbx_procfs_tree(ps->pid, ps->sid, out, cap);
}

/* The workload itself: its main process is not yet reaped, or something is left in the
 * cgroup or tree. Can be 0 while an end is still to be reported (ps->ending). The cgroup
 * is trusted where there is one, and once destroy removed it (empty) nothing is left;
 * without one, a process of the sandbox's own uid counts too (a /proc scan). What left
 * the cgroup is swept by uid at destroy (ps_remove). */
static int workload_alive(struct pstate *ps) {
    pid_t pids[8];
    if (ps->pid > 0 && !ps->main_done)
        return 1;
    if (list_pids(ps, pids, 8) > 0)
        return 1;
    return !ps->has_cg && !ps->rm_had_cg && ps->own_uid && sbx_ident_in_use(ps->uid, (gid_t)-1);
}

static int ps_alive(struct sbx_sandbox *sb) {
    struct pstate *ps = ps_of(sb);
    if (ps == NULL)
        return 0;
    /* While ending (draining until watch_cb reports the end) it still counts as alive
     * for stop's purposes, so that the end is reported exactly once. */
    return ps->ending || workload_alive(ps);
}

/* Sends sig to all of the sandbox, never waiting: through the cgroup (one pass of
 * sbx_cgroup_signal; the ending timer repeats SIGKILL while anything is left), else to
 * each process of the tree, to the session and (a /proc scan, then a helper) to what
 * still runs as the sandbox's own uid. */
static void signal_all(struct pstate *ps, int sig) {
    pid_t pids[MAX_PIDS];
    if (ps->has_cg) {
        sbx_cgroup_signal(&ps->cg, sig);
        return;
    }
    int n = list_pids(ps, pids, MAX_PIDS);
    for (int i = 0; i < n && i < MAX_PIDS; i++)
        kill(pids[i], sig);
    if (ps->sid > 0)
        kill(-ps->sid, sig);
    /* Whatever escaped both still runs as the sandbox's own uid. */
    if (ps->own_uid && sbx_ident_in_use(ps->uid, (gid_t)-1) &&
        sbx_spawn_kill_uid(ps->uid, ps->gid, sig) != 0)
        SBX_WARN("cannot signal the sandbox's uid", "uid=%u", (unsigned)ps->uid);
}

/* Notes sb's dynamic uid in ps, for signal_all and workload_alive. */
static void note_uid(struct sbx_sandbox *sb, struct pstate *ps) {
    ps->own_uid = sb->ident.kind == SBX_IDENT_DYNAMIC;
    ps->uid = sb->ident.uid;
    ps->gid = sb->ident.gid;
}

/* The path of FIFO stream (0 stdout, 1 stderr) in sb's folder. */
static void fifo_path(const struct sbx_sandbox *sb, int stream, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s", sb->dir, stream == 0 ? "stdout.fifo" : "stderr.fifo");
}

/* Reads what the workload wrote to one FIFO, through a descriptor opened for this read
 * only. Returns 0 when it is empty (or gone), 1 when more than one turn's share was
 * there (read again), -1 when no descriptor was free (try later). */
static int drain_fifo(struct sbx_sandbox *sb, int stream) {
    char path[600];
    char buf[READ_CHUNK];
    int left = 0;
    fifo_path(sb, stream, path, sizeof path);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return sbx_fd_exhausted(errno) ? -1 : 0;
    for (int rounds = 0;; rounds++) {
        if (rounds == 64) {
            left = 1;
            break;
        }
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        sbx_sandbox_output(sb, (enum sbx_stream)stream, buf, (size_t)n);
        if (n < (ssize_t)sizeof buf)
            break;
    }
    close(fd);
    return left;
}

/* A drain left for later: both FIFOs are read again. */
static void drain_cb(evutil_socket_t fd, short what, void *arg);

/* Drains both FIFOs after ms (0: on the next loop turn), creating the timer on first use. */
static void drain_later(struct sbx_sandbox *sb, int ms) {
    struct pstate *ps = ps_of(sb);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (ps->drain_ev == NULL)
        ps->drain_ev = evtimer_new(sb->core->base, drain_cb, sb);
    if (ps->drain_ev == NULL || evtimer_add(ps->drain_ev, &tv) != 0)
        SBX_WARN("cannot schedule an output drain", "id=%s", sb->id);
}

/* See drain_later. */
static void drain_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_sandbox *sb = arg;
    (void)fd;
    (void)what;
    int a = drain_fifo(sb, 0), b = drain_fifo(sb, 1);
    if (a != 0 || b != 0)
        drain_later(sb, a < 0 || b < 0 ? DRAIN_RETRY_MS : 0);
}

/* A FIFO was written to (fifowatch): its output goes to the sandbox's log and log events. */
static void fifo_cb(void *arg, int stream) {
    struct sbx_sandbox *sb = arg;
    int r = drain_fifo(sb, stream);
    if (r != 0)
        drain_later(sb, r < 0 ? DRAIN_RETRY_MS : 0);
}

/* Stops watching both FIFOs and lets the holder close them; call only once the workload
 * is gone and its output drained (what is still buffered dies). Idempotent. */
static void close_fifos(struct pstate *ps) {
    for (int i = 0; i < 2; i++) {
        sbx_fifowatch_remove(ps->wd[i]);
        ps->wd[i] = -1;
    }
    sbx_fdhold_drop(&ps->hold);
    if (ps->drain_ev != NULL)
        event_free(ps->drain_ev);
    ps->drain_ev = NULL;
}

/* Creates (if missing) the two FIFOs, hands a read-write descriptor on each to a holder
 * and watches both; sandboxd keeps no descriptor. Parts already done are kept. */
static int open_fifos(struct sbx_sandbox *sb, struct sbx_err *err) {
    struct pstate *ps = ps_of(sb);
    char path[600];
    int fds[2] = {-1, -1};
    int rc = -1;
    for (int i = 0; i < 2; i++) {
        fifo_path(sb, i, path, sizeof path);
        if (mkfifo(path, 0600) != 0 && errno != EEXIST) {
            set_err(err, "cannot create %.200s: %s", path, errno);
            goto done;
        }
        /* Read and write in one descriptor (Linux allows O_RDWR on a FIFO): the open
         * never waits for a peer, and, a writer too, the holder keeps the FIFO from
         * reporting end-of-file when the workload's writers close. */
        if (ps->hold.holder < 0 && (fds[i] = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0) {
            set_err(err, "cannot open %.200s: %s", path, errno);
            goto done;
        }
        if (ps->wd[i] < 0 &&
            (ps->wd[i] = sbx_fifowatch_add(sb->core->base, path, fifo_cb, sb, i)) < 0) {
            set_err(err, "cannot watch %.200s: %s", path, errno);
            goto done;
        }
    }
    if (ps->hold.holder < 0 && sbx_fdhold_put(sb->core->base, fds, &ps->hold) != 0) {
        set_err(err, "cannot hand the FIFOs of %.200s to a descriptor holder: %s", sb->id, errno);
        goto done;
    }
    rc = 0;
done:
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    return rc;
}

static void watch_cb(evutil_socket_t fd, short what, void *arg);
static void confirm_cb(evutil_socket_t fd, short what, void *arg);
static void begin_ending(struct sbx_sandbox *sb, int grace_ms);

/* (Re)arms the watch timer to fire in ms, creating it on first use: 0, or -1 when out of memory. */
static int arm_watch(struct sbx_sandbox *sb, int ms) {
    struct pstate *ps = ps_of(sb);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (ps->watch == NULL)
        ps->watch = evtimer_new(sb->core->base, watch_cb, sb);
    return ps->watch != NULL ? evtimer_add(ps->watch, &tv) : -1;
}

/* A zeroed backend state with no FIFO watched or held, linked in all_states and set as
 * sb->bstate; NULL when out of memory. */
static struct pstate *pstate_new(struct sbx_sandbox *sb) {
    struct pstate *ps = calloc(1, sizeof *ps);
    if (ps == NULL)
        return NULL;
    ps->sb = sb;
    ps->wd[0] = ps->wd[1] = -1;
    ps->hold = SBX_FDHOLD_NONE;
    ps->confirm_fd = -1;
    ps->next = all_states;
    if (all_states != NULL)
        all_states->prev = ps;
    all_states = ps;
    sb->bstate = ps;
    return ps;
}

/* Unlinks ps from all_states, frees it and clears its sandbox's bstate; the caller has
 * closed and freed what it holds. */
static void pstate_free(struct pstate *ps) {
    if (ps->prev != NULL)
        ps->prev->next = ps->next;
    else
        all_states = ps->next;
    if (ps->next != NULL)
        ps->next->prev = ps->prev;
    ps->sb->bstate = NULL;
    free(ps);
}

/* The working directory: cwd as given when absolute, else relative to the workspace. */
static const char *work_dir(const struct sbx_sandbox *sb, const char *cwd, char *buf, size_t cap) {
    if (cwd == NULL)
        return sb->workspace;
    if (cwd[0] == '/')
        return cwd;
    snprintf(buf, cap, "%s/%s", sb->workspace, cwd);
    return buf;
}

/* The sandbox's group name below each controller root: sandboxd/<node>/<id>. */
static void cgroup_name(const struct sbx_sandbox *sb, char *out, size_t cap) {
    snprintf(out, cap, "sandboxd/%s/%s", sb->core->node->name, sb->id);
}

/* Builds envp: a small default environment, then the config's env. */
static char **build_env(const struct sbx_sandbox *sb, const struct sbx_kvv *extra) {
    const struct sbx_kvv *base = &sb->cfg.env;
    size_t n = 4 + base->n + (extra ? extra->n : 0);
    char **envp = calloc(n + 1, sizeof *envp);
    size_t k = 0;
    if (envp == NULL)
        return NULL;
    const char *defaults[4][2] = {
        {"PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
        {"HOME", sb->workspace},
        {"SANDBOX_ID", sb->id},
        {"LANG", "C.UTF-8"}};
    for (int i = 0; i < 4; i++) {
        if (asprintf(&envp[k], "%s=%s", defaults[i][0], defaults[i][1]) < 0)
            goto err;
        k++;
    }
    const struct sbx_kvv *lists[2] = {base, extra};
    for (int l = 0; l < 2; l++) {
        if (lists[l] == NULL)
            continue;
        for (size_t i = 0; i < lists[l]->n; i++) {
            size_t klen = strlen(lists[l]->v[i].key);
            /* A later value replaces an earlier one with the same key. */
            for (size_t j = 0; j < k; j++) {
                if (strncmp(envp[j], lists[l]->v[i].key, klen) == 0 && envp[j][klen] == '=') {
                    free(envp[j]);
                    envp[j] = envp[--k];
                    envp[k] = NULL;
                    break;
                }
            }
            if (asprintf(&envp[k], "%s=%s", lists[l]->v[i].key, lists[l]->v[i].value) < 0)
                goto err;
            k++;
        }
    }
    return envp;
err:
    for (size_t i = 0; i < k; i++)
        free(envp[i]);
    free(envp);
    return NULL;
}

/* Frees an envp made by build_env; NULL is fine. */
static void free_env(char **envp) {
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++)
        free(envp[i]);
    free(envp);
}

/* Fills spec's user and capability fields from sb->ident: the workload (and every exec)
 * runs as the sandbox's uid, never falling back to sandboxd's own when a named user is
 * unknown. Capabilities go unless the target is root (an explicit `user => root`, or a
 * root sandboxd without dynamic uids); no_new_privs is always set (spawn.c). 0, or -1
 * with *err. */
static int spec_identity(const struct sbx_sandbox *sb, struct sbx_spawn_spec *spec,
                         struct sbx_err *err) {
    const struct sbx_ident *id = &sb->ident;
    if (id->kind == SBX_IDENT_NAMED && !id->resolved) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "no such user: %.200s",
                 sb->cfg.user != NULL ? sb->cfg.user : "?");
        return -1;
    }
    if (id->kind != SBX_IDENT_SHARED) {
        spec->set_user = 1;
        spec->uid = id->uid;
        spec->gid = id->gid;
    }
    int root_target = spec->set_user ? spec->uid == 0 : geteuid() == 0;
    spec->drop_caps = !root_target;
    spec->drop_bounding = !root_target && geteuid() == 0;
    return 0;
}

/* See process.h. Creates the cgroup and applies limits, opens the FIFOs, spawns the main
 * process in its own session; the exec is confirmed from a loop event (confirm_cb). On -1
 * a cgroup left empty is removed; the state and FIFOs stay for a later start. */
int sbx_process_start(struct sbx_sandbox *sb, const struct sbx_process_hooks *hooks,
                      struct sbx_err *err) {
    struct pstate *ps = ps_of(sb);
    struct sbx_core *core = sb->core;
    char name[400];
    char **envp = NULL;
    struct sbx_spawn_spec spec;
    int rc = -1;
    int e = 0;
    const char *stage = NULL;

    if (ps == NULL && (ps = pstate_new(sb)) == NULL) {
        set_err(err, "%s%s", "out of memory: ", ENOMEM);
        return -1;
    }
    ps->hooks = hooks;
    note_uid(sb, ps);
    ps->main_done = 0;
    ps->ending = 0;
    ps->killed = 0;
    ps->adopted = 0;
    if (!ps->has_cg && core->cg.version != SBX_CG_NONE) {
        cgroup_name(sb, name, sizeof name);
        if (sbx_cgroup_create(&core->cg, name, &ps->cg) == 0)
            ps->has_cg = 1;
        else
            SBX_WARN("cgroup unavailable; limits fall back to rlimits", "id=%s errno=%d", sb->id, errno);
    }
    if (ps->has_cg &&
        sbx_cgroup_set_limits(&ps->cg, sb->cfg.memory_mb, sb->cfg.cpus, sb->cfg.pids_limit) != 0) {
        set_err(err, "cannot apply limits to %s: %s", sb->id, errno);
        goto done;
    }
    if (ps->has_cg) {
        uint64_t u, l;
        sbx_cgroup_memory(&ps->cg, &u, &l, &ps->oom_base);
    }
    if (open_fifos(sb, err) != 0)
        goto done;
    envp = build_env(sb, NULL);
    if (envp == NULL) {
        set_err(err, "%s%s", "out of memory: ", ENOMEM);
        goto done;
    }
    memset(&spec, 0, sizeof spec);
    spec.argv = sb->cfg.cmd.v;
    spec.envp = envp;
    char cwd_buf[5200];
    spec.cwd = work_dir(sb, sb->cfg.cwd, cwd_buf, sizeof cwd_buf);
    spec.stdin_fd = -1;
    char out_path[600], err_path[600];
    snprintf(out_path, sizeof out_path, "%s/stdout.fifo", sb->dir);
    snprintf(err_path, sizeof err_path, "%s/stderr.fifo", sb->dir);
    spec.stdout_path = out_path;
    spec.stderr_path = err_path;
    spec.cg = ps->has_cg ? &ps->cg : NULL;
    spec.new_namespaces = sb->cfg.isolation == SBX_ISOLATION_NAMESPACES;
    spec.hostname = sb->id;
    if (!ps->has_cg) {
        spec.rlimit_as_bytes = sb->cfg.memory_mb * 1024L * 1024L;
        spec.rlimit_nproc = 0; /* per user, not per sandbox: not applied */
    }
    if (spec_identity(sb, &spec, err) != 0)
        goto done;
    int async = 1;
    int confirm_fd = -1;
    pid_t pid = sbx_spawn_start(&spec, &confirm_fd, &e, &stage);
    if (pid > 0 && async) {
        ps->confirm_ev = event_new(core->base, confirm_fd, EV_READ, confirm_cb, sb);
        if (ps->confirm_ev == NULL || event_add(ps->confirm_ev, NULL) != 0) {
            if (ps->confirm_ev != NULL)
                event_free(ps->confirm_ev);
            ps->confirm_ev = NULL;
            async = 0;
        }
    }
    if (pid > 0 && !async)
        pid = sbx_spawn_wait(pid, confirm_fd, &e, &stage);
    if (pid < 0) {
        if (fd_limit_err(err, e))
            goto done;
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "%s: %s (%s)", stage, strerror(e),
                 sb->cfg.cmd.v[0]);
        goto done;
    }
    ps->pid = pid;
    ps->sid = pid;
    struct sbx_procfs_stat st;
    ps->starttime = sbx_procfs_stat(pid, &st) == 0 ? st.starttime : 0;
    ps->end_deferred = 0;
    if (async)
        ps->confirm_fd = confirm_fd;
    rc = async ? SBX_START_PENDING : 0;
done:
    free_env(envp);
    if (rc < 0 && ps->has_cg && list_pids(ps, (pid_t[1]){0}, 1) == 0 &&
        sbx_cgroup_try_remove(&ps->cg) == 0)
        ps->has_cg = 0;
    return rc;
}

/* Backend start: sbx_process_start without hooks (the core is told). */
static int ps_start(struct sbx_sandbox *sb, struct sbx_err *err) {
    return sbx_process_start(sb, NULL, err);
}

/* Tells whoever waits for sb's start (its hooks, else the core) that the exec is
 * confirmed (err NULL) or failed. */
static void tell_started(struct sbx_sandbox *sb, const struct sbx_err *err) {
    struct pstate *ps = ps_of(sb);
    if (ps->hooks != NULL && ps->hooks->started != NULL)
        ps->hooks->started(sb, err);
    else
        sbx_sandbox_started(sb, err);
}

/* Closes a start's exec confirmation pipe and its event; idempotent. */
static void close_confirm(struct pstate *ps) {
    if (ps->confirm_ev != NULL)
        event_free(ps->confirm_ev);
    ps->confirm_ev = NULL;
    if (ps->confirm_fd >= 0)
        close(ps->confirm_fd);
    ps->confirm_fd = -1;
}

/* A start's exec confirmation is readable, or its main process was reaped first
 * (end_deferred): the sandbox runs (and its end, if already reaped, begins), or the
 * start failed with the child's error as a synchronous start would have answered (the
 * child exits 127; the core's SIGCHLD handler reaps it as nobody's). tell_started runs
 * last: its waiters may destroy and free sb. */
static void confirm_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_sandbox *sb = arg;
    struct pstate *ps = ps_of(sb);
    struct sbx_err err;
    int e = 0;
    const char *stage = NULL;
    (void)fd;
    (void)what;
    int r = sbx_spawn_confirm(ps->confirm_fd, &e, &stage);
    if (r == 0 && !ps->end_deferred) {
        event_add(ps->confirm_ev, NULL); /* not yet: wait on */
        return;
    }
    close_confirm(ps);
    if (r < 0) {
        memset(&err, 0, sizeof err);
        if (!fd_limit_err(&err, e)) {
            err.reason_atom = "backend";
            snprintf(err.detail, sizeof err.detail, "%s: %s (%s)", stage, strerror(e),
                     sb->cfg.cmd.v[0]);
        }
        ps->pid = 0;
        ps->main_done = 1;
        ps->main_status = -1;
        ps->end_deferred = 0;
        tell_started(sb, &err);
        return;
    }
    if (ps->end_deferred) {
        ps->end_deferred = 0;
        begin_ending(sb, sb->destroying ? 0 : sb->core->stop_grace_ms);
    }
    tell_started(sb, NULL);
}

/* Everything is gone: tell the core how the main process ended. */
static void finish_ending(struct sbx_sandbox *sb) {
    struct pstate *ps = ps_of(sb);
    struct sbx_exit ex = {0, 0};
    int oom = 0;
    /* Nothing is left to write: read what is buffered (a FIFO holds at most 1 MiB, more
     * rounds only if something escaped still writes), then let the holder close them. */
    for (int i = 0; i < 2; i++)
        for (int rounds = 0; rounds < 4 && drain_fifo(sb, i) == 1; rounds++)
            ;
    close_fifos(ps);
    if (ps->main_done && ps->main_status >= 0) {
        if (WIFEXITED(ps->main_status)) {
            ex.kind = 1;
            ex.value = WEXITSTATUS(ps->main_status);
        } else if (WIFSIGNALED(ps->main_status)) {
            ex.kind = 2;
            ex.value = WTERMSIG(ps->main_status);
        }
    }
    if (ps->has_cg) {
        uint64_t u, l, ooms = 0;
        if (sbx_cgroup_memory(&ps->cg, &u, &l, &ooms) == 0 && ooms > ps->oom_base) {
            oom = 1;
            ps->oom_base = ooms;
        }
    }
    ps->pid = 0;
    ps->ending = 0;
    if (ps->watch != NULL)
        evtimer_del(ps->watch);
    /* A backend built on this one may deal with the end itself (it may release ps). */
    if (ps->hooks != NULL && ps->hooks->ended != NULL && ps->hooks->ended(sb, &ex))
        return;
    sbx_sandbox_ended(sb, &ex, oom);
}

/* An adopted main process still runs: signal 0 says whether the pid exists, and every
 * ADOPT_STAT_EVERY polls its start time (pid reuse) and state (a zombie that its new
 * parent has not reaped yet) are read too; every poll while ending (stop or destroy
 * waits on it: a killed workload is a zombie until its new parent reaps it, which under
 * load took the 3 polls of up to 50 ms each, most of an adopted sandbox's destroy). */
static int adopted_alive(struct pstate *ps) {
    if (kill(ps->pid, 0) != 0 && errno == ESRCH)
        return 0;
    return (!ps->ending && ++ps->polls % ADOPT_STAT_EVERY != 0) ||
           sbx_procfs_same_process(ps->pid, ps->starttime);
}

/* Polls while ending (drain and kill) and, for adopted workloads, for liveness. */
static void watch_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_sandbox *sb = arg;
    struct pstate *ps = ps_of(sb);
    (void)fd;
    (void)what;
    if (ps->adopted && !ps->main_done && ps->pid > 0 && !adopted_alive(ps)) {
        ps->main_done = 1;
        ps->main_status = -1; /* not our child: the exit status is unknown */
        if (!ps->ending) {
            ps->ending = 1;
            ps->kill_at = sbx_mono_ms() + sb->core->stop_grace_ms;
            signal_all(ps, SIGTERM);
        }
    }
    if (ps->ending) {
        if (!workload_alive(ps)) {
            finish_ending(sb);
            return;
        }
        /* SIGKILL once the grace is over, and again at every poll while anything is
         * left (signal_all never waits: what forked since the last pass is caught now). */
        if (ps->killed || sbx_mono_ms() >= ps->kill_at) {
            ps->killed = 1;
            signal_all(ps, SIGKILL);
        }
        ps->poll_ms = ps->poll_ms * 2 < WATCH_MS ? ps->poll_ms * 2 : WATCH_MS;
        arm_watch(sb, ps->poll_ms);
        return;
    }
    if (ps->adopted)
        arm_watch(sb, ADOPT_POLL_MS);
}

/* Starts or hurries the end: SIGTERM now (SIGKILL when grace_ms is 0), SIGKILL once kill_at
 * passes, and polling from 1 ms until nothing is left, when finish_ending reports it. */
static void begin_ending(struct sbx_sandbox *sb, int grace_ms) {
    struct pstate *ps = ps_of(sb);
    if (!ps->ending) {
        ps->ending = 1;
        ps->kill_at = sbx_mono_ms() + grace_ms;
        ps->killed = 0;
    } else if (sbx_mono_ms() + grace_ms < ps->kill_at) {
        ps->kill_at = sbx_mono_ms() + grace_ms;
    }
    signal_all(ps, grace_ms > 0 ? SIGTERM : SIGKILL);
    if (ps->pid > 0 && !ps->main_done)
        kill(ps->pid, grace_ms > 0 ? SIGTERM : SIGKILL);
    /* Most workloads end at once: look again soon, then less and less often. */
    ps->poll_ms = 1;
    arm_watch(sb, ps->poll_ms);
}

/* Backend stop: with nothing alive and no end under way, reports the end at
 * once (sbx_sandbox_ended runs here and may free sb); otherwise begins ending. */
static void ps_stop(struct sbx_sandbox *sb, int grace_ms) {
    struct pstate *ps = ps_of(sb);
    if (ps == NULL || (!ps_alive(sb) && !ps->ending)) {
        struct sbx_exit ex = {0, 0};
        if (ps != NULL)
            ps->pid = 0;
        sbx_sandbox_ended(sb, &ex, 0);
        return;
    }
    begin_ending(sb, grace_ms);
}

static void exec_finish(struct pexec *x);

/* Frees an exec with its buffers, fds and events; the caller
 * has unlinked it. Neither signals nor waits for its process. */
static void exec_free(struct pexec *x) {
    for (int i = 0; i < 2; i++) {
        if (x->ev[i] != NULL)
            event_free(x->ev[i]);
        if (x->fd[i] >= 0)
            close(x->fd[i]);
        free(x->buf[i]);
    }
    if (x->in_ev != NULL)
        event_free(x->in_ev);
    if (x->in_fd >= 0)
        close(x->in_fd);
    if (x->timer != NULL)
        event_free(x->timer);
    free(x->in_data);
    free(x);
}

/* Removes x from its sandbox's exec list (a no-op if it is not there); frees nothing. */
static void exec_unlink(struct pexec *x) {
    struct pstate *ps = ps_of(x->sb);
    for (struct pexec **pp = &ps->execs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            return;
        }
    }
}

/* Backend release: SIGKILLs what is left, answers pending execs with an error
 * (their done callbacks run here), removes the cgroup and frees the state. After
 * destroy's remove step (ps_remove) nothing is left to wait for; without it (shutdown,
 * a beam_node's failed start) it waits, bounded, for the group to empty and sweeps the
 * sandbox's uid with the blocking helper. */
static void ps_release(struct sbx_sandbox *sb) {
    struct pstate *ps = ps_of(sb);
    struct sbx_err gone = {.reason_atom = "backend", .detail = "the sandbox was destroyed"};
    if (ps == NULL)
        return;
    sbx_freezer_forget(sb);
    int alive = ps_alive(sb);
    if (alive)
        signal_all(ps, SIGKILL);
    while (ps->execs != NULL) {
        struct pexec *x = ps->execs;
        ps->execs = x->next;
        if (x->pid > 0 && !x->reaped)
            kill(-x->pid, SIGKILL);
        x->done(x->key, NULL, &gone);
        exec_free(x);
    }
    close_fifos(ps);
    close_confirm(ps);
    if (ps->watch != NULL)
        event_free(ps->watch);
    if (ps->rm_timer != NULL)
        event_free(ps->rm_timer);
    if (ps->has_cg && sbx_cgroup_try_remove(&ps->cg) != 0 && !ps->rm_tried) {
        /* The waiting kill first (it returns once the group is empty), then remove. */
        for (int i = 0; i < 10; i++) {
            sbx_cgroup_kill(&ps->cg, SIGKILL);
            if (sbx_cgroup_remove(&ps->cg) == 0)
                break;
        }
    }
    if (alive && ps->has_cg && ps->own_uid && !ps->swept &&
        sbx_spawn_kill_uid(ps->uid, ps->gid, SIGKILL) != 0)
        SBX_WARN("cannot signal the sandbox's uid", "uid=%u", (unsigned)ps->uid);
    pstate_free(ps);
}

static void remove_step(struct sbx_sandbox *sb);

/* rm_timer: the next try of destroy's remove step; with a uid helper under way, that
 * helper took SWEEP_MS (a workload of its uid can stop it): it is killed, and its reap
 * goes on (sbx_process_reaped). */
static void remove_cb(evutil_socket_t fd, short what, void *arg) {
    struct sbx_sandbox *sb = arg;
    struct pstate *ps = ps_of(sb);
    (void)fd;
    (void)what;
    if (ps->sweeper > 0) {
        kill(ps->sweeper, SIGKILL);
        return;
    }
    remove_step(sb);
}

/* The sandbox's cgroup is gone, so nothing of the sandbox runs in it any more: its uid
 * goes to the batched sweep (uidsweep.h), which sweeps whatever of that uid still runs
 * outside it and then gives the uid back to the pool. The sandbox no longer holds the
 * uid (the core does not give it back at free). 1 when handed over, else 0. */
static int hand_uid_to_sweep(struct sbx_sandbox *sb) {
    struct pstate *ps = ps_of(sb);
    if (!ps->rm_had_cg || ps->has_cg || sb->ident.kind != SBX_IDENT_DYNAMIC ||
        sb->ident.uid != ps->uid || sbx_uidsweep_add(sb->core, ps->uid, ps->gid) != 0)
        return 0;
    ps->swept = 1;
    sb->ident.kind = SBX_IDENT_SHARED;
    return 1;
}

/* destroy's remove step, from ps_remove, its timer or the end of the uid helper: the
 * cgroup first (while it has tasks: a SIGKILL pass and another try, 1 ms growing to
 * WATCH_MS apart; after RM_GIVE_UP_MS it is left, with a warning, for release), then
 * what still runs as the sandbox's own uid outside it: once the cgroup is gone, by the
 * batched sweep after the answer (hand_uid_to_sweep); without a cgroup, or one left
 * behind, by a helper of its own before it (reaped through sbx_process_reaped, which
 * calls this again; one that fails or is held up past SWEEP_MS is replaced, SWEEPS_MAX
 * in all, then a warning). Then removed(sb), which may free sb. */
static void remove_step(struct sbx_sandbox *sb) {
    struct pstate *ps = ps_of(sb);
    if (ps->has_cg) {
        if (sbx_cgroup_try_remove(&ps->cg) == 0) {
            ps->has_cg = 0;
        } else if (sbx_mono_ms() < ps->rm_give_up) {
            struct timeval tv = {0, ps->rm_ms * 1000};
            sbx_cgroup_signal(&ps->cg, SIGKILL);
            ps->rm_ms = ps->rm_ms * 2 < WATCH_MS ? ps->rm_ms * 2 : WATCH_MS;
            if (ps->rm_timer == NULL)
                ps->rm_timer = evtimer_new(sb->core->base, remove_cb, sb);
            if (ps->rm_timer != NULL && evtimer_add(ps->rm_timer, &tv) == 0)
                return;
        } else {
            SBX_WARN("the sandbox's cgroup does not empty; left behind", "id=%s", sb->id);
        }
    }
    if (ps->own_uid && !ps->swept)
        hand_uid_to_sweep(sb);
    if (ps->own_uid && !ps->swept && ps->sweeps < SWEEPS_MAX) {
        struct timeval tv = {SWEEP_MS / 1000, (SWEEP_MS % 1000) * 1000};
        ps->sweeps++;
        ps->sweeper = sbx_spawn_kill_uid_start(ps->uid, ps->gid, SIGKILL);
        if (ps->rm_timer == NULL)
            ps->rm_timer = evtimer_new(sb->core->base, remove_cb, sb);
        if (ps->sweeper > 0 && ps->rm_timer != NULL && evtimer_add(ps->rm_timer, &tv) == 0)
            return;
        if (ps->sweeper > 0)
            return; /* no watchdog: its reap still goes on */
        ps->sweeper = 0;
    }
    if (ps->own_uid && !ps->swept)
        SBX_WARN("cannot signal the sandbox's uid", "uid=%u", (unsigned)ps->uid);
    void (*done)(struct sbx_sandbox *) = ps->removed;
    ps->removed = NULL;
    if (done != NULL)
        done(sb);
}

/* Backend remove (destroy, once the workload ended): the cgroup emptied and removed and
 * the uid swept, never waiting on the loop; done(sb) once nothing of the sandbox is left
 * (possibly inside this call). */
static void ps_remove(struct sbx_sandbox *sb, void (*done)(struct sbx_sandbox *sb)) {
    struct pstate *ps = ps_of(sb);
    if (ps == NULL) {
        done(sb);
        return;
    }
    ps->removed = done;
    ps->rm_tried = 1;
    ps->rm_had_cg = ps->has_cg;
    ps->rm_ms = 1;
    ps->rm_give_up = sbx_mono_ms() + RM_GIVE_UP_MS;
    remove_step(sb);
}

/* exec: output collection. Returns 1 when the exec finished (x is freed). */
static int exec_read(struct pexec *x, int i) {
    char buf[READ_CHUNK];
    for (;;) {
        ssize_t n = read(x->fd[i], buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0 || errno != EAGAIN) {
                event_del(x->ev[i]);
                close(x->fd[i]);
                x->fd[i] = -1;
            }
            break;
        }
        size_t room = x->max > x->len[i] ? x->max - x->len[i] : 0;
        size_t take = (size_t)n < room ? (size_t)n : room;
        if (take < (size_t)n)
            x->truncated = 1;
        if (take > 0) {
            char *nb = realloc(x->buf[i], x->len[i] + take);
            if (nb == NULL) {
                x->truncated = 1;
            } else {
                x->buf[i] = nb;
                memcpy(x->buf[i] + x->len[i], buf, take);
                x->len[i] += take;
            }
        }
        if ((size_t)n < sizeof buf)
            break;
    }
    if (x->reaped && x->fd[0] < 0 && x->fd[1] < 0) {
        exec_finish(x);
        return 1;
    }
    return 0;
}

/* An exec pipe is readable: collects its output; may finish the exec and free x. */
static void exec_out_cb(evutil_socket_t fd, short what, void *arg) {
    struct pexec *x = arg;
    (void)what;
    exec_read(x, fd == x->fd[0] ? 0 : 1);
}

/* Writes stdin_data to the exec; closes its stdin once all is written or the pipe fails. */
static void exec_in_cb(evutil_socket_t fd, short what, void *arg) {
    struct pexec *x = arg;
    (void)fd;
    (void)what;
    while (x->in_off < x->in_len) {
        ssize_t n = write(x->in_fd, x->in_data + x->in_off, x->in_len - x->in_off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0)
            break;
        x->in_off += (size_t)n;
    }
    event_del(x->in_ev);
    close(x->in_fd);
    x->in_fd = -1;
}

/* The deadline: kill the command. Also used after it was reaped, to stop waiting for
 * pipes that something it left behind still holds open. */
static void exec_timeout_cb(evutil_socket_t fd, short what, void *arg) {
    struct pexec *x = arg;
    (void)fd;
    (void)what;
    if (x->reaped) {
        exec_finish(x);
        return;
    }
    x->timed_out = 1;
    kill(-x->pid, SIGKILL);
}

/* Answers through done (the result is valid only during that
 * call), then unlinks and frees x; x is invalid on return. */
static void exec_finish(struct pexec *x) {
    struct sbx_exec_result r;
    memset(&r, 0, sizeof r);
    exec_unlink(x);
    if (WIFEXITED(x->status)) {
        r.exit_code = WEXITSTATUS(x->status);
    } else {
        r.exit_code = -1;
        r.signal = WIFSIGNALED(x->status) ? WTERMSIG(x->status) : 0;
    }
    r.stdout_data = x->buf[0] != NULL ? x->buf[0] : "";
    r.stdout_len = x->len[0];
    r.stderr_data = x->buf[1] != NULL ? x->buf[1] : "";
    r.stderr_len = x->len[1];
    r.duration_ms = sbx_mono_ms() - x->start_ms;
    r.truncated = x->truncated;
    r.timed_out = x->timed_out;
    x->done(x->key, &r, NULL);
    exec_free(x);
}

/* A close-on-exec pipe with a non-blocking read end: 0, or -1 with errno and nothing open. */
static int nonblock_pipe(int p[2]) {
    if (pipe2(p, O_CLOEXEC) != 0)
        return -1;
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    return 0;
}

/* Backend exec: spawns cmd in the sandbox (its cgroup, cwd, user,
 * namespaces), keeping up to max_output_bytes per stream; done(key) runs
 * later, never inside this call. On -1 nothing is left running or open. */
static int ps_exec(struct sbx_sandbox *sb, const struct sbx_strv *cmd,
                   const struct sbx_exec_opts *opts, uint64_t key, sbx_exec_done_fn done,
                   struct sbx_err *err) {
    struct pstate *ps = ps_of(sb);
    struct pexec *x = NULL;
    int out[2] = {-1, -1}, errp[2] = {-1, -1}, in[2] = {-1, -1};
    char **envp = NULL;
    int e = 0;
    const char *stage = NULL;
    int rc = -1;

    if (ps == NULL || ps->pid <= 0 || ps->main_done || sb->status != SBX_ST_RUNNING) {
        err->reason_atom = "not_running";
        return -1;
    }
    x = calloc(1, sizeof *x);
    envp = build_env(sb, &opts->env);
    if (x == NULL || envp == NULL || nonblock_pipe(out) != 0 || nonblock_pipe(errp) != 0 ||
        (opts->stdin_data != NULL && pipe2(in, O_CLOEXEC) != 0)) {
        set_err(err, "cannot set up exec%s: %s", "", errno ? errno : ENOMEM);
        goto done;
    }
    x->fd[0] = x->fd[1] = x->in_fd = -1;
    struct sbx_spawn_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.argv = cmd->v;
    spec.envp = envp;
    char cwd_buf[5200];
    spec.cwd = work_dir(sb, opts->cwd != NULL ? opts->cwd : sb->cfg.cwd, cwd_buf, sizeof cwd_buf);
    spec.stdin_fd = in[0];
    spec.stdout_fd = out[1];
    spec.stderr_fd = errp[1];
    spec.cg = ps->has_cg ? &ps->cg : NULL;
    if (sb->cfg.isolation == SBX_ISOLATION_NAMESPACES) {
        /* Enter the namespaces of the sandbox's pid 1 (the reaper's only child). */
        pid_t kids[2];
        int n = sbx_procfs_tree(ps->pid, 0, kids, 2);
        spec.join_ns_of = n >= 2 ? (kids[0] == ps->pid ? kids[1] : kids[0]) : ps->pid;
    }
    if (spec_identity(sb, &spec, err) != 0)
        goto done;
    x->pid = sbx_spawn(&spec, &e, &stage);
    if (x->pid < 0) {
        if (fd_limit_err(err, e))
            goto done;
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "%s: %s (%s)", stage, strerror(e), cmd->v[0]);
        goto done;
    }
    x->sb = sb;
    x->key = key;
    x->done = done;
    x->max = opts->max_output_bytes;
    x->start_ms = sbx_mono_ms();
    x->fd[0] = out[0];
    x->fd[1] = errp[0];
    out[0] = errp[0] = -1;
    for (int i = 0; i < 2; i++) {
        x->ev[i] = event_new(sb->core->base, x->fd[i], EV_READ | EV_PERSIST, exec_out_cb, x);
        event_add(x->ev[i], NULL);
    }
    if (opts->stdin_data != NULL) {
        x->in_fd = in[1];
        in[1] = -1;
        fcntl(x->in_fd, F_SETFL, O_NONBLOCK);
        x->in_data = malloc(opts->stdin_len > 0 ? opts->stdin_len : 1);
        if (x->in_data != NULL)
            memcpy(x->in_data, opts->stdin_data, opts->stdin_len);
        x->in_len = x->in_data != NULL ? opts->stdin_len : 0;
        x->in_ev = event_new(sb->core->base, x->in_fd, EV_WRITE | EV_PERSIST, exec_in_cb, x);
        event_add(x->in_ev, NULL);
    }
    x->timer = evtimer_new(sb->core->base, exec_timeout_cb, x);
    struct timeval tv = {opts->timeout_ms / 1000, (opts->timeout_ms % 1000) * 1000};
    evtimer_add(x->timer, &tv);
    x->next = ps->execs;
    ps->execs = x;
    x = NULL;
    rc = 0;
done:
    if (x != NULL) {
        x->fd[0] = x->fd[1] = x->in_fd = -1;
        exec_free(x);
    }
    int fds[] = {out[0], out[1], errp[0], errp[1], in[0], in[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free_env(envp);
    return rc;
}

/* Backend exec_cancel: SIGKILLs the exec's process group and
 * frees it without calling done; an unknown key is ignored. */
static void ps_exec_cancel(struct sbx_sandbox *sb, uint64_t key) {
    struct pstate *ps = ps_of(sb);
    for (struct pexec *x = ps != NULL ? ps->execs : NULL; x != NULL; x = x->next) {
        if (x->key == key) {
            exec_unlink(x);
            if (!x->reaped)
                kill(-x->pid, SIGKILL);
            /* Reaped later by SIGCHLD: nothing refers to x any more. */
            exec_free(x);
            return;
        }
    }
}

/* See process.h. A reaped exec may be answered here (its done callback
 * runs, re-entrantly); a main process starts the sandbox's end. */
int sbx_process_reaped(struct sbx_core *core, pid_t pid, int status) {
    if (sbx_uidsweep_reaped(pid, status))
        return 1;
    for (struct pstate *ps = all_states; ps != NULL; ps = ps->next) {
        struct sbx_sandbox *sb = ps->sb;
        if (ps->pid == pid && !ps->main_done) {
            ps->main_done = 1;
            ps->main_status = status;
            if (ps->confirm_ev != NULL) {
                /* Its exec confirmation first (confirm_cb goes on with the end). */
                ps->end_deferred = 1;
                event_active(ps->confirm_ev, EV_READ, 0);
                return 1;
            }
            begin_ending(sb, sb->destroying ? 0 : core->stop_grace_ms);
            return 1;
        }
        if (ps->sweeper == pid) {
            /* Exit 0: it ran as the uid and signalled; else it is tried again. */
            ps->sweeper = 0;
            ps->swept = WIFEXITED(status) && WEXITSTATUS(status) == 0;
            if (ps->rm_timer != NULL)
                evtimer_del(ps->rm_timer);
            remove_step(sb);
            return 1;
        }
        for (struct pexec *x = ps->execs; x != NULL; x = x->next) {
            if (x->pid == pid) {
                x->reaped = 1;
                x->status = status;
                for (int i = 0; i < 2; i++)
                    if (x->fd[i] >= 0 && exec_read(x, i))
                        return 1;
                if (x->fd[0] < 0 && x->fd[1] < 0) {
                    exec_finish(x);
                    return 1;
                }
                /* Something it started still holds the pipes: give it a moment. */
                struct timeval tv = {0, 200000};
                evtimer_add(x->timer, &tv);
                return 1;
            }
        }
    }
    return 0;
}

/* See process.h. */
void sbx_process_stop(struct sbx_core *core) { sbx_uidsweep_stop(core); }

/* Backend processes: appends one map per live (non-zombie) process;
 * never fails. cpu_percent is over each process's lifetime. */
static int ps_processes(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err) {
    struct pstate *ps = ps_of(sb);
    pid_t pids[MAX_PIDS];
    int n = ps != NULL ? list_pids(ps, pids, MAX_PIDS) : 0;
    (void)err;
    if (n < 0)
        n = 0;
    if (n > MAX_PIDS)
        n = MAX_PIDS;
    int64_t uptime_ticks = 0;
    double hz = (double)sbx_procfs_hz();
    FILE *f = fopen("/proc/uptime", "r");
    double up = 0;
    if (f != NULL) {
        if (fscanf(f, "%lf", &up) != 1)
            up = 0;
        fclose(f);
    }
    uptime_ticks = (int64_t)(up * hz);
    int count = 0;
    struct sbx_procfs_stat *st = calloc((size_t)(n > 0 ? n : 1), sizeof *st);
    if (st == NULL)
        n = 0;
    for (int i = 0; i < n; i++)
        if (sbx_procfs_stat(pids[i], &st[count]) == 0 && st[count].state != 'Z')
            count++;
    if (count > 0)
        ei_x_encode_list_header(x, count);
    for (int i = 0; i < count; i++) {
        /* CPU share over the process's lifetime. */
        int64_t age = uptime_ticks - (int64_t)st[i].starttime;
        double cpu = age > 0 ? 100.0 * (double)st[i].utime_ticks / (double)age : 0.0;
        ei_x_encode_map_header(x, 5);
        ei_x_encode_atom(x, "pid");
        ei_x_encode_long(x, st[i].pid);
        ei_x_encode_atom(x, "name");
        ei_x_encode_binary(x, st[i].comm, (int)strlen(st[i].comm));
        ei_x_encode_atom(x, "status");
        ei_x_encode_atom(x, sbx_ps_state_atom(st[i].state));
        ei_x_encode_atom(x, "memory_bytes");
        ei_x_encode_ulonglong(x, st[i].rss_bytes);
        ei_x_encode_atom(x, "cpu_percent");
        ei_x_encode_double(x, cpu);
    }
    ei_x_encode_empty_list(x);
    free(st);
    return 0;
}

/* Backend metrics: memory, cpu and pids from the cgroup, else summed over the
 * tree; cpu_percent is since the previous sample (kept in sb). Never fails. */
static int ps_metrics(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err) {
    struct pstate *ps = ps_of(sb);
    pid_t pids[MAX_PIDS];
    uint64_t mem = 0, limit = 0, ooms = 0, cpu_ns = 0;
    int n = ps != NULL ? list_pids(ps, pids, MAX_PIDS) : 0;
    (void)err;
    if (n < 0)
        n = 0;
    if (ps != NULL && ps->has_cg) {
        sbx_cgroup_memory(&ps->cg, &mem, &limit, &ooms);
        sbx_cgroup_cpu_ns(&ps->cg, &cpu_ns);
    } else {
        double hz = (double)sbx_procfs_hz();
        for (int i = 0; i < n && i < MAX_PIDS; i++) {
            struct sbx_procfs_stat st;
            if (sbx_procfs_stat(pids[i], &st) == 0) {
                mem += st.rss_bytes;
                cpu_ns += (uint64_t)((double)st.utime_ticks * 1e9 / hz);
            }
        }
        limit = (uint64_t)sb->cfg.memory_mb * 1024u * 1024u;
    }
    int64_t now = sbx_mono_ms();
    if (sb->metrics_last_mono > 0 && now > sb->metrics_last_mono &&
        (int64_t)cpu_ns >= sb->metrics_last_ns)
        sb->cpu_percent = 100.0 * (double)((int64_t)cpu_ns - sb->metrics_last_ns) /
                          ((double)(now - sb->metrics_last_mono) * 1e6);
    sb->metrics_last_ns = (int64_t)cpu_ns;
    sb->metrics_last_mono = now;
    ei_x_encode_map_header(x, 5);
    ei_x_encode_atom(x, "cpu_percent");
    ei_x_encode_double(x, sb->cpu_percent);
    ei_x_encode_atom(x, "memory_bytes");
    ei_x_encode_ulonglong(x, mem);
    ei_x_encode_atom(x, "memory_limit_bytes");
    ei_x_encode_ulonglong(x, limit);
    ei_x_encode_atom(x, "pids");
    ei_x_encode_long(x, n);
    ei_x_encode_atom(x, "ts");
    ei_x_encode_longlong(x, sbx_wall_ms());
    return 0;
}

/* An argv that opens a shell in the sandbox: nsenter into its namespaces when isolated,
 * else a shell in its workspace; when the workload has a uid of its own, through setpriv
 * (util-linux) as that uid and gid, without groups or capabilities and with
 * no_new_privs, as the workload runs. */
static int ps_shell(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err) {
    struct pstate *ps = ps_of(sb);
    char target[32], reuid[40], regid[40];
    const char *argv[24];
    int n = 0;
    (void)err;
    ei_x_encode_map_header(x, 2);
    ei_x_encode_atom(x, "kind");
    ei_x_encode_atom(x, "exec");
    ei_x_encode_atom(x, "argv");
    if (sb->cfg.isolation == SBX_ISOLATION_NAMESPACES && ps != NULL && ps->pid > 0) {
        pid_t kids[2];
        int k = sbx_procfs_tree(ps->pid, 0, kids, 2);
        pid_t init = k >= 2 ? (kids[0] == ps->pid ? kids[1] : kids[0]) : ps->pid;
        snprintf(target, sizeof target, "%d", (int)init);
        const char *ns[] = {"nsenter", "-t", target, "-m", "-u", "-i", "-n", "-p"};
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            argv[n++] = ns[i];
    }
    if (sbx_ident_separate(&sb->ident)) {
        snprintf(reuid, sizeof reuid, "--reuid=%u", (unsigned)sb->ident.uid);
        snprintf(regid, sizeof regid, "--regid=%u", (unsigned)sb->ident.gid);
        const char *sp[] = {"setpriv", reuid, regid, "--clear-groups", "--inh-caps=-all",
                            "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs"};
        for (size_t i = 0; i < sizeof sp / sizeof sp[0]; i++)
            argv[n++] = sp[i];
    }
    const char *sh[] = {"/bin/sh", "-c", "cd \"$1\" && exec /bin/sh -i", "sh", sb->workspace};
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++)
        argv[n++] = sh[i];
    ei_x_encode_list_header(x, n);
    for (int i = 0; i < n; i++)
        ei_x_encode_binary(x, argv[i], (int)strlen(argv[i]));
    ei_x_encode_empty_list(x);
    return 0;
}

/* Journal part: {Pid, StartTime, HasCgroup}. */
static void ps_journal(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct pstate *ps = sb->bstate;
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_long(x, ps != NULL ? ps->pid : 0);
    ei_x_encode_ulonglong(x, ps != NULL ? ps->starttime : 0);
    ei_x_encode_long(x, ps != NULL ? ps->has_cg : 0);
}

/* See process.h. Takes back a journalled workload whose pid and start time still match
 * (then polled about once a second). Otherwise kills leftovers in its cgroup and returns
 * 0, keeping the state it made for a later start. */
int sbx_process_adopt(struct sbx_sandbox *sb, const struct sbx_process_hooks *hooks,
                      const char *buf, int idx) {
    long pid = 0, has_cg = 0;
    unsigned long long starttime = 0;
    int arity;
    struct sbx_err err;
    char name[400];
    if (ei_decode_tuple_header(buf, &idx, &arity) != 0 || arity != 3 ||
        ei_decode_long(buf, &idx, &pid) != 0 || ei_decode_ulonglong(buf, &idx, &starttime) != 0 ||
        ei_decode_long(buf, &idx, &has_cg) != 0)
        return 0;
    struct pstate *ps = pstate_new(sb);
    if (ps == NULL)
        return 0;
    ps->hooks = hooks;
    note_uid(sb, ps);
    if (has_cg && sb->core->cg.version != SBX_CG_NONE) {
        cgroup_name(sb, name, sizeof name);
        sbx_cgroup_paths(&sb->core->cg, name, &ps->cg);
        ps->has_cg = 1;
        uint64_t u, l;
        sbx_cgroup_memory(&ps->cg, &u, &l, &ps->oom_base);
    }
    memset(&err, 0, sizeof err);
    if (open_fifos(sb, &err) != 0)
        SBX_WARN("adopted sandbox's output is not watched", "id=%s %s", sb->id, err.detail);
    if (pid > 0 && sbx_procfs_same_process((pid_t)pid, starttime)) {
        ps->pid = (pid_t)pid;
        ps->sid = (pid_t)pid;
        ps->starttime = starttime;
        ps->adopted = 1;
        /* What it wrote while sandboxd was away; polls spread over the first second. */
        drain_later(sb, 0);
        arm_watch(sb, (int)((unsigned)pid % ADOPT_POLL_MS));
        return 1;
    }
    /* Gone while we were away: clear out whatever it left. */
    signal_all(ps, SIGKILL);
    drain_fifo(sb, 0);
    drain_fifo(sb, 1);
    close_fifos(ps);
    return 0;
}

/* Backend adopt: sbx_process_adopt without hooks. */
static int ps_adopt(struct sbx_sandbox *sb, const char *buf, int idx) {
    return sbx_process_adopt(sb, NULL, buf, idx);
}

/* Backend ref: the main pid, or undefined. */
static void ps_ref(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct pstate *ps = sb->bstate;
    if (ps != NULL && ps->pid > 0)
        ei_x_encode_long(x, ps->pid);
    else
        ei_x_encode_atom(x, "undefined");
}

/* Backend detach: frees the state and leaves the workload and its cgroup
 * running; pending execs are dropped without their done callbacks. */
static void ps_detach(struct sbx_sandbox *sb) {
    struct pstate *ps = ps_of(sb);
    if (ps == NULL)
        return;
    sbx_freezer_forget(sb);
    while (ps->execs != NULL) {
        struct pexec *x = ps->execs;
        ps->execs = x->next;
        exec_free(x);
    }
    drain_fifo(sb, 0);
    drain_fifo(sb, 1);
    close_fifos(ps);
    close_confirm(ps);
    if (ps->watch != NULL)
        event_free(ps->watch);
    if (ps->rm_timer != NULL)
        event_free(ps->rm_timer);
    pstate_free(ps);
}

/* Backend pause, resume, paused: the freezer of the sandbox's cgroup (freezer.h). */
static const struct sbx_cgroup *ps_cgroup(struct sbx_sandbox *sb) {
    struct pstate *ps = ps_of(sb);
    return ps != NULL && ps->has_cg ? &ps->cg : NULL;
}
static int ps_pause(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    return sbx_freezer_set(sb, sb->core->base, ps_cgroup(sb), 1, key, done, err);
}
static int ps_resume(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    return sbx_freezer_set(sb, sb->core->base, ps_cgroup(sb), 0, key, done, err);
}
static int ps_paused(struct sbx_sandbox *sb) { return sbx_freezer_frozen(ps_cgroup(sb)); }

/* Backend available: always usable (cgroups are optional). */
static int ps_available(struct sbx_core *core, const char **why) {
    (void)core;
    (void)why;
    return 1;
}

const struct sbx_backend sbx_backend_process = {
    .config = &sbx_process_config_schema,
    .name = "process",
    .type = SBX_TYPE_PROCESS,
    .local_uid = 1,
    .available = ps_available,
    .start = ps_start,
    .stop = ps_stop,
    .alive = ps_alive,
    .release = ps_release,
    .detach = ps_detach,
    .remove = ps_remove,
    .exec = ps_exec,
    .exec_cancel = ps_exec_cancel,
    .metrics = ps_metrics,
    .processes = ps_processes,
    .shell = ps_shell,
    .adopt = ps_adopt,
    .journal = ps_journal,
    .ref = ps_ref,
    .pause = ps_pause,
    .resume = ps_resume,
    .paused = ps_paused,
};
