/* The vm backend: QEMU machines whose guest runs the project's agent. This file is the
 * ops table and the VM's life: start (accel, disk, qemu, then the agent's HELLO within
 * boot_timeout_ms), stop (agent SHUTDOWN, QMP quit after a third of the grace, SIGKILL
 * after the grace), the end (qemu's exit, seen through its pidfd), release, detach,
 * journal and adopt (by pid and start time: QMP and the agent are connected again and
 * HELLO is sent again), pause and resume (QMP stop/cont). */
#define _GNU_SOURCE
#include <ei.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/backend.h"
#include "backends/process/procfs.h"
#include "backends/process/spawn.h"
#include "backends/process/uidsweep.h"
#include "backends/vm/vm.h"
#include "backends/vm/vm_agent.h"
#include "backends/vm/vm_config.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "dist/node.h"
#include "util/log.h"

/* A new state for sb, nothing running. NULL on no memory. */
static struct vm_state *state_new(struct sbx_sandbox *sb) {
    struct vm_state *vs = calloc(1, sizeof *vs);
    if (vs == NULL)
        return NULL;
    vs->sb = sb;
    vs->pidfd = vs->console_fd = vs->confirm_fd = -1;
    vs->timer = evtimer_new(sb->core->base, NULL, NULL);
    if (vs->timer == NULL) {
        free(vs);
        return NULL;
    }
    return vs;
}

/* Arms vs->timer to call fn after ms. */
static void arm(struct vm_state *vs, int64_t ms, void (*fn)(evutil_socket_t, short, void *)) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_del(vs->timer);
    evtimer_assign(vs->timer, vs->sb->core->base, fn, vs);
    evtimer_add(vs->timer, &tv);
}

/* Frees vs: helpers cancelled, connections closed (requests answered when answer),
 * qemu watched no more; kills it when kill. */
static void state_free(struct vm_state *vs, int answer, int kill_it) {
    vm_accel_forget(vs);
    free(vm_child_cancel(vs->helper));
    vs->helper = NULL;
    if (kill_it && vs->phase != VM_GONE && vs->pid > 0)
        vm_qemu_kill(vs);
    vm_agent_close(vs->agent, answer ? 2 : 0);
    vs->agent = NULL;
    vm_qmp_close(vs->qmp, 0);
    vs->qmp = NULL;
    vm_qemu_unwatch(vs);
    /* qemu may still be leaving its group (its pidfd fires before the kernel lets go of
     * it): the bounded wait of sbx_cgroup_remove (about 200 ms) only then. */
    if (kill_it && vs->has_cg && sbx_cgroup_try_remove(&vs->cg) != 0 && errno == EBUSY)
        (void)sbx_cgroup_remove(&vs->cg);
    event_free(vs->timer);
    free(vs);
}

/* Ends a pending start with why (a timeout when timeout): once qemu is gone if it runs,
 * else now. */
static void fail_start(struct vm_state *vs, const char *why, int timeout) {
    if (why != vs->start_why)
        snprintf(vs->start_why, sizeof vs->start_why, "%.250s", why);
    vs->start_timeout = timeout;
    vs->start_failed = 1;
    if (vs->pid > 0 && vs->phase != VM_GONE) {
        vm_qemu_kill(vs);
        return; /* vm_on_qemu_exit reports it */
    }
    vs->phase = VM_GONE;
    struct sbx_err err;
    memset(&err, 0, sizeof err);
    if (timeout)
        err.reason_atom = "timeout";
    else
        vm_err(&err, "%s", vs->start_why);
    sbx_sandbox_started(vs->sb, &err);
}

/* The boot deadline: no HELLO in boot_timeout_ms. */
static void boot_timeout(evutil_socket_t fd, short what, void *arg) {
    struct vm_state *vs = arg;
    (void)fd;
    (void)what;
    if (vs->phase == VM_BOOTING)
        fail_start(vs, "the guest agent did not answer within boot_timeout_ms", 1);
}

/* The image and disk are ready: qemu starts, QMP and the agent connect. */
static void prepared(struct vm_state *vs, const char *why) {
    const struct sbx_vm_config *vc = sbx_vm_cfg(&vs->sb->cfg);
    char kernel[4096], initrd[4096], err[300];
    const char *w = NULL;
    if (why != NULL) {
        fail_start(vs, why, 0);
        return;
    }
    if (vs->sb->stop_requested || vs->sb->destroying) {
        fail_start(vs, "stopped while starting", 0);
        return;
    }
    if (vc->kernel != NULL) {
        snprintf(kernel, sizeof kernel, "%s", vc->kernel);
        snprintf(initrd, sizeof initrd, "%s", vc->initrd != NULL ? vc->initrd : "");
    } else if (vm_image_default(kernel, sizeof kernel, initrd, sizeof initrd, &w) != 0) {
        fail_start(vs, w, 0);
        return;
    }
    if (vm_qemu_spawn(vs, kernel, initrd[0] ? initrd : NULL, err, sizeof err) != 0) {
        fail_start(vs, err, 0);
        return;
    }
    vs->phase = VM_BOOTING;
    vs->qmp = vm_qmp_open(vs);
    vs->agent = vm_agent_open(vs);
    if (vs->qmp == NULL || vs->agent == NULL) {
        fail_start(vs, "out of memory", 0);
        return;
    }
    arm(vs, vc->boot_timeout_ms, boot_timeout);
}

/* accel decided: the disk next, if any. */
static void accel_ready(struct vm_state *vs, const char *accel) {
    snprintf(vs->accel, sizeof vs->accel, "%s", accel);
    if (sbx_vm_cfg(&vs->sb->cfg)->disk == NULL) {
        prepared(vs, NULL);
        return;
    }
    if (vm_image_prepare(vs, prepared) != 0)
        fail_start(vs, vs->start_why, 0);
}

/* Backend start: always pending; the agent's HELLO makes it running. */
static int vm_start(struct sbx_sandbox *sb, struct sbx_err *err) {
    const struct sbx_vm_config *vc = sbx_vm_cfg(&sb->cfg);
    char k[16], i[16];
    const char *why = NULL;
    struct vm_state *vs;
    if (vc == NULL) {
        vm_err(err, "no vm config");
        return -1;
    }
    if (vc->kernel == NULL && vm_image_default(k, 0, i, 0, &why) != 0) {
        vm_err(err, "%s", why);
        return -1;
    }
    if (vc->accel == SBX_VM_ACCEL_KVM && access("/dev/kvm", R_OK | W_OK) != 0) {
        vm_err(err, "accel kvm: /dev/kvm is not usable here (%s); use accel => auto or tcg",
               strerror(errno));
        return -1;
    }
    if (sb->bstate != NULL) { /* a restart: the old state ended with qemu */
        state_free(sb->bstate, 1, 1);
        sb->bstate = NULL;
    }
    vs = state_new(sb);
    if (vs == NULL) {
        vm_err(err, "out of memory");
        return -1;
    }
    sb->bstate = vs;
    vs->phase = VM_PREPARING;
    if (vc->accel == SBX_VM_ACCEL_AUTO)
        vm_accel_when(vs, accel_ready);
    else
        accel_ready(vs, vc->accel == SBX_VM_ACCEL_KVM ? "kvm" : "tcg");
    return SBX_START_PENDING;
}

/* See vm.h: HELLO answered. The first one ends the start (and starts cmd); later ones
 * (a reconnect, an adoption) change nothing. */
void vm_on_agent_hello(struct vm_state *vs) {
    struct sbx_sandbox *sb = vs->sb;
    struct sbx_err err;
    memset(&err, 0, sizeof err);
    if (vs->phase != VM_BOOTING)
        return;
    evtimer_del(vs->timer);
    vs->phase = VM_RUNNING;
    SBX_INFO("vm agent up", "id=%s guest_kernel=%s accel=%s", sb->id, vs->guest_kernel,
             vs->accel);
    if (sb->cfg.cmd.n > 0 && !vs->main_started) {
        vs->main_started = 1;
        if (vm_agent_exec(vs->agent, &sb->cfg.cmd, NULL, 1, 0, NULL, &err) != 0) {
            fail_start(vs, err.detail[0] ? err.detail : "cannot start cmd in the guest", 0);
            return;
        }
    }
    sbx_sandbox_started(sb, NULL);
}

/* A stop while preparing: the workload never ran. */
static void ended_unstarted(evutil_socket_t fd, short what, void *arg) {
    struct vm_state *vs = arg;
    struct sbx_exit none = {0, 0};
    (void)fd;
    (void)what;
    sbx_sandbox_ended(vs->sb, &none, 0);
}

/* Stop escalation: quit through QMP, then SIGKILL. */
static void stop_step(evutil_socket_t fd, short what, void *arg) {
    struct vm_state *vs = arg;
    (void)fd;
    (void)what;
    if (vs->phase == VM_GONE)
        return;
    if (vs->stop_step < 2 && vm_qmp_command(vs->qmp, "quit", 0, NULL, NULL) == 0) {
        vs->stop_step = 2;
        arm(vs, vs->stop_grace_ms, stop_step);
        return;
    }
    vs->stop_step = 3;
    vm_qemu_kill(vs);
}

/* Backend stop: SHUTDOWN to the agent; QMP quit after a third of the grace (at once
 * without an agent); SIGKILL after the grace. */
static void vm_stop(struct sbx_sandbox *sb, int grace_ms) {
    struct vm_state *vs = sb->bstate;
    if (vs == NULL || vs->phase == VM_GONE || vs->phase == VM_STOPPING)
        return;
    if (vs->phase == VM_PREPARING) { /* nothing runs yet: ended, from the loop */
        free(vm_child_cancel(vs->helper));
        vs->helper = NULL;
        vm_accel_forget(vs);
        vs->phase = VM_GONE;
        arm(vs, 0, ended_unstarted);
        return;
    }
    vs->phase = VM_STOPPING;
    vs->stop_grace_ms = grace_ms > 300 ? grace_ms : 300;
    if (vm_agent_ready(vs->agent) && vm_agent_shutdown(vs->agent) == 0) {
        vs->stop_step = 1;
        arm(vs, vs->stop_grace_ms / 3, stop_step);
    } else {
        stop_step(-1, 0, vs);
    }
}

/* See vm.h: cmd ended; the VM powers off and its end is the sandbox's. */
void vm_on_main_exit(struct vm_state *vs, const struct sbx_exit *ex) {
    vs->main_done = 1;
    vs->main_exit = *ex;
    if (vs->phase == VM_RUNNING) {
        vs->phase = VM_STOPPING;
        vs->stop_grace_ms = vs->sb->core->stop_grace_ms;
        if (vm_agent_shutdown(vs->agent) == 0) {
            vs->stop_step = 1;
            arm(vs, vs->stop_grace_ms / 3 + 1, stop_step);
        } else {
            stop_step(-1, 0, vs);
        }
    }
}

/* Removes what the run made in the sandbox folder (the folder itself is the core's). */
static void remove_files(struct vm_state *vs) {
    static const char *const names[] = {"disk.qcow2", "agent.sock", "qmp.sock", "console.fifo"};
    char p[600];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        vm_path(vs, names[i], p, sizeof p);
        unlink(p);
    }
}

/* See vm.h: qemu is gone. Everything of the run is closed and removed, then the core is
 * told: a failed start, or the workload's end (cmd's exit, or how qemu ended). */
void vm_on_qemu_exit(struct vm_state *vs) {
    struct sbx_sandbox *sb = vs->sb;
    enum vm_phase was = vs->phase;
    char line[160], never_ran[200];
    int exec_failed = vm_qemu_start_error(vs, never_ran, sizeof never_ran);
    vs->phase = VM_GONE;
    evtimer_del(vs->timer);
    vm_agent_close(vs->agent, 1);
    vs->agent = NULL;
    vm_qmp_close(vs->qmp, 1);
    vs->qmp = NULL;
    vm_qemu_unwatch(vs);
    if (vs->has_cg)
        (void)sbx_cgroup_try_remove(&vs->cg);
    remove_files(vs);
    if (was == VM_BOOTING || vs->start_failed) {
        struct sbx_err err;
        memset(&err, 0, sizeof err);
        if (vs->start_timeout) {
            err.reason_atom = "timeout";
        } else if (vs->start_failed) {
            vm_err(&err, "%s", vs->start_why);
        } else if (exec_failed) {
            vm_err(&err, "%s", never_ran);
        } else {
            char log[600];
            vm_path(vs, "qemu.log", log, sizeof log);
            FILE *f = fopen(log, "r");
            line[0] = '\0';
            while (f != NULL && fgets(line + 0, sizeof line, f) != NULL && line[0] != '\0') {
                char next[160];
                if (fgets(next, sizeof next, f) == NULL)
                    break;
                snprintf(line, sizeof line, "%s", next);
            }
            if (f != NULL)
                fclose(f);
            line[strcspn(line, "\n")] = '\0';
            vm_err(&err, "qemu exited before the agent answered (%s %d): %s",
                   vs->exit_kind == 2 ? "signal" : "status", vs->exit_value,
                   line[0] ? line : "no message");
        }
        sbx_sandbox_started(sb, &err);
        return;
    }
    struct sbx_exit ex = {vs->exit_kind, vs->exit_value};
    if (vs->main_done) {
        ex = vs->main_exit;
    } else if (!sb->stop_requested && !vs->qmp_shutdown_seen) {
        snprintf(line, sizeof line, "[vm] qemu ended without a shutdown: %s %d\n",
                 vs->exit_kind == 2 ? "killed by signal" : vs->exit_kind == 1 ? "exit status" : "status unknown (adopted)",
                 vs->exit_value);
        sbx_sandbox_output(sb, 1, line, strlen(line));
    }
    sbx_sandbox_ended(sb, &ex, 0);
}

/* Backend alive: qemu runs, or is being prepared (a stop then cancels it). */
static int vm_alive(struct sbx_sandbox *sb) {
    const struct vm_state *vs = sb->bstate;
    return vs != NULL && vs->phase != VM_GONE;
}

/* qemu's uid (a dynamic one) goes to the batched sweep (uidsweep.h), which SIGKILLs
 * whatever of it still runs and then gives it back to the pool; the sandbox holds it no
 * more. If it cannot be queued, it is swept here (blocking) and the core gives it back. */
static void sweep_uid(struct sbx_sandbox *sb) {
    struct sbx_ident *id = &sb->ident;
    if (id->kind != SBX_IDENT_DYNAMIC)
        return;
    if (sbx_uidsweep_add(sb->core, id->uid, id->gid) == 0) {
        id->kind = SBX_IDENT_SHARED;
        return;
    }
    if (sbx_spawn_kill_uid(id->uid, id->gid, SIGKILL) != 0)
        SBX_WARN("cannot sweep the VM's uid", "id=%s uid=%u", sb->id, (unsigned)id->uid);
}

/* Backend release: qemu killed if it still runs, everything freed, requests answered,
 * its uid swept. */
static void vm_release(struct sbx_sandbox *sb) {
    struct vm_state *vs = sb->bstate;
    if (vs != NULL) {
        sb->bstate = NULL;
        remove_files(vs);
        state_free(vs, 1, 1);
    }
    sweep_uid(sb);
}

/* Backend detach: qemu keeps running for the next sandboxd to adopt. */
static void vm_detach(struct sbx_sandbox *sb) {
    struct vm_state *vs = sb->bstate;
    if (vs == NULL)
        return;
    sb->bstate = NULL;
    state_free(vs, 0, 0);
}

/* 1 with *err unset when vs can take work now. */
static int usable(struct vm_state *vs, struct sbx_err *err) {
    if (vs == NULL || vs->phase != VM_RUNNING || vs->agent == NULL) {
        err->reason_atom = "not_running";
        return 0;
    }
    return 1;
}

/* Backend exec. */
static int vm_exec(struct sbx_sandbox *sb, const struct sbx_strv *cmd,
                   const struct sbx_exec_opts *opts, uint64_t key, sbx_exec_done_fn done,
                   struct sbx_err *err) {
    struct vm_state *vs = sb->bstate;
    if (!usable(vs, err))
        return -1;
    return vm_agent_exec(vs->agent, cmd, opts, 0, key, done, err);
}

/* Backend exec_cancel: an exec, a query, or a pause/resume whose caller left. */
static void vm_exec_cancel(struct sbx_sandbox *sb, uint64_t key) {
    struct vm_state *vs = sb->bstate;
    if (vs == NULL)
        return;
    if (vs->agent != NULL && vm_agent_cancel(vs->agent, key))
        return;
    free(vm_qmp_forget(vs->qmp, key));
}

/* Backend metrics_async / processes_async. */
static int vm_metrics_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                            struct sbx_err *err) {
    struct vm_state *vs = sb->bstate;
    return usable(vs, err) ? vm_agent_query(vs->agent, 1, key, done, err) : -1;
}
static int vm_processes_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                              struct sbx_err *err) {
    struct vm_state *vs = sb->bstate;
    return usable(vs, err) ? vm_agent_query(vs->agent, 0, key, done, err) : -1;
}

/* Synchronous forms: never used (the async ones are set), but the table wants them. */
static int vm_sync_query(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err) {
    (void)sb;
    (void)x;
    err->reason_atom = "unsupported";
    return -1;
}

/* A guest path: absolute, or relative to / in the guest. */
static const char *guest_path(const char *path, char *buf, size_t cap) {
    if (path[0] == '/')
        return path;
    snprintf(buf, cap, "/%s", path);
    return buf;
}

/* Backend copy_to / copy_from: through the agent's WRITE and READ. */
static int vm_copy_to(struct sbx_sandbox *sb, const char *path, const char *data, size_t len,
                      uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    struct vm_state *vs = sb->bstate;
    char buf[1100];
    if (!usable(vs, err))
        return -1;
    return vm_agent_copy_to(vs->agent, guest_path(path, buf, sizeof buf), data, len, key, done, err);
}
static int vm_copy_from(struct sbx_sandbox *sb, const char *path, uint64_t key,
                        sbx_value_done_fn done, struct sbx_err *err) {
    struct vm_state *vs = sb->bstate;
    char buf[1100];
    if (!usable(vs, err))
        return -1;
    return vm_agent_copy_from(vs->agent, guest_path(path, buf, sizeof buf), key, done, err);
}

struct pause_op {
    sbx_value_done_fn done;
};

/* QMP stop/cont answered. */
static void pause_done(struct vm_state *vs, uint64_t key, const char *why, void *arg) {
    struct pause_op *p = arg;
    struct sbx_err err;
    ei_x_buff x;
    memset(&err, 0, sizeof err);
    ei_x_new(&x);
    if (why != NULL) {
        vm_err(&err, "QMP: %s", why);
        p->done(vs->sb, key, NULL, 0, &err);
    } else {
        ei_x_encode_atom(&x, "ok");
        p->done(vs->sb, key, x.buff, (size_t)x.index, NULL);
    }
    ei_x_free(&x);
    free(p);
}

/* Backend pause / resume: QMP stop / cont (the vCPUs and the guest's clock stop). */
static int pause_cmd(struct sbx_sandbox *sb, const char *cmd, uint64_t key,
                     sbx_value_done_fn done, struct sbx_err *err) {
    struct vm_state *vs = sb->bstate;
    struct pause_op *p;
    if (!usable(vs, err))
        return -1;
    if ((p = calloc(1, sizeof *p)) == NULL) {
        vm_err(err, "out of memory");
        return -1;
    }
    p->done = done;
    if (vm_qmp_command(vs->qmp, cmd, key, pause_done, p) != 0) {
        free(p);
        vm_err(err, "qemu's QMP socket is not connected");
        return -1;
    }
    return 0;
}
static int vm_pause(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                    struct sbx_err *err) {
    return pause_cmd(sb, "stop", key, done, err);
}
static int vm_resume(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                     struct sbx_err *err) {
    return pause_cmd(sb, "cont", key, done, err);
}

/* Backend paused: not known until QMP answers query-status (vm_qmp.c tells the core). */
static int vm_paused(struct sbx_sandbox *sb) {
    (void)sb;
    return -1;
}

/* Backend shell: the QMP socket and the console for a human. */
static int vm_shell(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err) {
    char qmp[600];
    struct vm_state *vs = sb->bstate;
    if (!usable(vs, err))
        return -1;
    vm_path(vs, "qmp.sock", qmp, sizeof qmp);
    ei_x_encode_map_header(x, 2);
    ei_x_encode_atom(x, "kind");
    ei_x_encode_atom(x, "qmp");
    ei_x_encode_atom(x, "path");
    ei_x_encode_binary(x, qmp, (long)strlen(qmp));
    return 0;
}

/* Journal part: {vm, Pid, StartTime, Accel}. */
static void vm_journal(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct vm_state *vs = sb->bstate;
    ei_x_encode_tuple_header(x, 4);
    ei_x_encode_atom(x, "vm");
    ei_x_encode_long(x, vs != NULL && vs->phase != VM_GONE ? (long)vs->pid : 0);
    ei_x_encode_ulonglong(x, vs != NULL ? (unsigned long long)vs->starttime : 0);
    ei_x_encode_atom(x, vs != NULL && vs->accel[0] ? vs->accel : "tcg");
}

/* Backend adopt: the journalled qemu, if it is the same process still. QMP and the
 * agent are connected again (HELLO again); the main workload's frames go on with id 0. */
static int vm_adopt(struct sbx_sandbox *sb, const char *buf, int idx) {
    int arity;
    char atom[MAXATOMLEN], accel[MAXATOMLEN];
    long pid = 0;
    unsigned long long start = 0;
    struct vm_state *vs;
    char name[400];
    if (ei_decode_tuple_header(buf, &idx, &arity) != 0 || arity != 4 ||
        ei_decode_atom(buf, &idx, atom) != 0 || strcmp(atom, "vm") != 0 ||
        ei_decode_long(buf, &idx, &pid) != 0 || ei_decode_ulonglong(buf, &idx, &start) != 0 ||
        ei_decode_atom(buf, &idx, accel) != 0 || pid <= 0 ||
        !sbx_procfs_same_process((pid_t)pid, start) || (vs = state_new(sb)) == NULL)
        return 0;
    sb->bstate = vs;
    vs->pid = (pid_t)pid;
    vs->starttime = start;
    vs->adopted = 1;
    vs->phase = VM_RUNNING;
    snprintf(vs->accel, sizeof vs->accel, "%s", strcmp(accel, "kvm") == 0 ? "kvm" : "tcg");
    if (sb->core->cg.version != SBX_CG_NONE) {
        snprintf(name, sizeof name, "sandboxd/%s/%s", sb->core->node->name, sb->id);
        sbx_cgroup_paths(&sb->core->cg, name, &vs->cg);
        vs->has_cg = 1;
    }
    if (vm_qemu_watch(vs) != 0 || (vs->qmp = vm_qmp_open(vs)) == NULL ||
        (vs->agent = vm_agent_open(vs)) == NULL) {
        sb->bstate = NULL;
        state_free(vs, 0, 0);
        return 0;
    }
    if (sb->cfg.cmd.n > 0) {
        vs->main_started = 1;
        vm_agent_keep_main(vs->agent);
    }
    return 1;
}

/* Backend ref: qemu's pid, or undefined. */
static void vm_ref(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct vm_state *vs = sb->bstate;
    if (vs != NULL && vs->pid > 0 && vs->phase != VM_GONE)
        ei_x_encode_long(x, (long)vs->pid);
    else
        ei_x_encode_atom(x, "undefined");
}

/* Backend ports: the forwards, as {Host, Guest}... in docker's map form. */
static void vm_ports(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct sbx_vm_config *vc = sbx_vm_cfg(&sb->cfg);
    if (vc != NULL && vc->nports > 0) {
        ei_x_encode_list_header(x, (long)vc->nports);
        for (size_t i = 0; i < vc->nports; i++) {
            ei_x_encode_map_header(x, 3);
            ei_x_encode_atom(x, "host");
            ei_x_encode_long(x, vc->ports[i].host);
            ei_x_encode_atom(x, "container");
            ei_x_encode_long(x, vc->ports[i].guest);
            ei_x_encode_atom(x, "protocol");
            ei_x_encode_atom(x, "tcp");
        }
    }
    ei_x_encode_empty_list(x);
}

/* 1 if prog is an executable in PATH. */
static int in_path(const char *prog) {
    const char *path = getenv("PATH");
    char buf[4096];
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path != '\0') {
        size_t n = strcspn(path, ":");
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, path, prog);
        if (access(buf, X_OK) == 0)
            return 1;
        path += n + (path[n] == ':');
    }
    return 0;
}

/* Backend available: qemu and qemu-img installed and the default image built. Starts
 * the accel probe. */
static int vm_available(struct sbx_core *core, const char **why) {
    char k[16], i[16];
    if (!in_path("qemu-system-x86_64") || !in_path("qemu-img")) {
        *why = "qemu-system-x86_64 or qemu-img not installed (qemu-system-x86, qemu-utils)";
        return 0;
    }
    if (vm_image_default(k, 0, i, 0, why) != 0)
        return 0;
    (void)vm_accel_auto(core);
    return 1;
}

/* See vm.h. */
const char *sbx_vm_accel_info(struct sbx_core *core) {
    const char *a = core != NULL ? vm_accel_auto(core) : NULL;
    return a != NULL ? a : "probing";
}

const struct sbx_backend sbx_backend_vm = {
    .name = "vm",
    .type = SBX_TYPE_VM,
    .local_uid = 1, /* qemu runs as the sandbox's own uid (vm_qemu.c) */
    .config = &sbx_vm_config_schema,
    .available = vm_available,
    .start = vm_start,
    .stop = vm_stop,
    .alive = vm_alive,
    .release = vm_release,
    .detach = vm_detach,
    .exec = vm_exec,
    .exec_cancel = vm_exec_cancel,
    .metrics = vm_sync_query,
    .processes = vm_sync_query,
    .metrics_async = vm_metrics_async,
    .processes_async = vm_processes_async,
    .copy_to = vm_copy_to,
    .copy_from = vm_copy_from,
    .shell = vm_shell,
    .adopt = vm_adopt,
    .journal = vm_journal,
    .ref = vm_ref,
    .ports = vm_ports,
    .pause = vm_pause,
    .resume = vm_resume,
    .paused = vm_paused,
};
