/* The vm backend's shared state: one struct vm_state per sandbox (sb->bstate), and the
 * functions its files offer each other. Files: vm.c (ops table, life: start, stop,
 * release, adopt, journal), vm_config.c (keys), vm_image.c (where the image is, disks and
 * overlays), vm_accel.c (auto: kvm or tcg), vm_child.c (helper children off the loop),
 * vm_qemu.c (the qemu command line, its process and console), vm_qmp.c (QMP), vm_agent.c
 * (the guest agent connection), vm_ops.c (exec, copy, ps, metrics, pause through them). */
#ifndef SBX_BACKENDS_VM_VM_H
#define SBX_BACKENDS_VM_VM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backends/backend.h"
#include "backends/process/cgroup.h"
#include "backends/vm/vm_config.h"
#include "backends/vm/vm_info.h"
#include "core/sandbox.h"

struct sbx_core;
struct sbx_sandbox;
struct event;
struct vm_qmp;
struct vm_agent;
struct vm_child;

/* Where a VM is in its life. */
enum vm_phase {
    VM_PREPARING = 0, /* accel probe, disk check, overlay: before qemu runs */
    VM_BOOTING,       /* qemu runs; waiting for the agent's HELLO */
    VM_RUNNING,       /* the agent answered */
    VM_STOPPING,      /* shutdown asked: agent SHUTDOWN, QMP quit, SIGKILL */
    VM_GONE           /* qemu has exited (or never ran) */
};

struct vm_state {
    struct sbx_sandbox *sb;
    enum vm_phase phase;
    int adopted;               /* qemu is not our child (an earlier run started it) */
    pid_t pid;                 /* qemu, 0 before it runs */
    uint64_t starttime;        /* its /proc start time: with pid, names it */
    int pidfd;                 /* readable once qemu has exited */
    int confirm_fd;            /* the spawn's exec confirmation (backends/process/spawn.h) */
    struct event *pid_ev;
    int console_fd;            /* the console FIFO's read end */
    struct event *console_ev;
    struct sbx_cgroup cg;
    int has_cg;
    struct vm_qmp *qmp;
    struct vm_agent *agent;
    struct vm_child *helper;   /* qemu-img at work, or NULL */
    struct event *timer;       /* boot deadline, then stop escalation */
    int stop_step;             /* 0 none, 1 SHUTDOWN sent, 2 quit sent, 3 SIGKILL sent */
    int qmp_shutdown_seen;     /* QMP said SHUTDOWN: the guest powered off */
    int qmp_quit_sent;
    int exit_kind;             /* how qemu ended (struct sbx_exit kind/value) */
    int exit_value;
    char accel[8];             /* "kvm" / "tcg" in use */
    char guest_kernel[128];    /* the agent's HELLO */
    char disk_fmt[16];         /* the base disk's format (qemu-img info) */
    char overlay[600];         /* sandbox dir/disk.qcow2 when a disk is used */
    char start_why[256];       /* why the start failed, for sbx_sandbox_started */
    int start_failed;          /* the start is being undone: report start_why */
    int start_timeout;         /* ... as {error, timeout} */
    int stop_grace_ms;
    int main_started;          /* cmd sent to the agent */
    int main_done;             /* its EXIT came */
    struct sbx_exit main_exit;
};

/* ---- vm_image.c ---- */
/* The default image's kernel and initrd paths into the buffers; 0, or -1 with *why. */
int vm_image_default(char *kernel, size_t kcap, char *initrd, size_t icap, const char **why);
/* Starts the disk preparation of vs (qemu-img info, then the overlay): done(vs, NULL) or
 * done(vs, why) later. 0, or -1 with why copied into vs->start_why. */
int vm_image_prepare(struct vm_state *vs, void (*done)(struct vm_state *vs, const char *why));

/* ---- vm_accel.c ---- */
/* The accel `auto` picks: "kvm" or "tcg" once known, NULL while the probe runs. Starts
 * the probe at first use. */
const char *vm_accel_auto(struct sbx_core *core);
/* Calls done(vs, accel) once `auto` is decided (possibly inside this call). */
void vm_accel_when(struct vm_state *vs, void (*done)(struct vm_state *vs, const char *accel));
/* Forgets a vs waiting for the probe (released meanwhile). */
void vm_accel_forget(struct vm_state *vs);

/* ---- vm_child.c: a helper child (qemu-img, the accel probe) off the loop ---- */
/* Runs argv (stdin /dev/null, stdout+stderr captured, at most 64 KiB kept) and calls
 * done(arg, status, out, len) once it has exited or after timeout_ms (then killed;
 * status -1). status is the wait status, or -2 when it could not be read (the core
 * reaped it first): then judge by the output. NULL if it could not start. */
struct vm_child *vm_child_run(struct sbx_core *core, char *const *argv, int timeout_ms,
                              void (*done)(void *arg, int status, const char *out, size_t len),
                              void *arg);
/* Kills and forgets a helper without calling done; returns its arg (the caller's). */
void *vm_child_cancel(struct vm_child *c);

/* ---- vm_qemu.c ---- */
/* Spawns qemu for vs with its cgroup, console FIFO and sockets. 0, or -1 with why. */
int vm_qemu_spawn(struct vm_state *vs, const char *kernel, const char *initrd, char *why,
                  size_t cap);
/* Watches pid (pidfd) and the console of vs; for adoption too. 0 or -1. */
int vm_qemu_watch(struct vm_state *vs);
/* Stops watching and closes what vs holds of qemu (not killing it). */
void vm_qemu_unwatch(struct vm_state *vs);
/* 1 with why filled when qemu never ran (its exec failed: not installed, ...). */
int vm_qemu_start_error(const struct vm_state *vs, char *why, size_t cap);
/* SIGKILL to qemu (its cgroup too). */
void vm_qemu_kill(struct vm_state *vs);
/* A non-blocking connection to the unix socket name in the sandbox folder; -1 if
 * nothing listens there (yet). */
int vm_connect(const struct vm_state *vs, const char *name);
/* The path of a file in the sandbox folder; the length it needs (as snprintf). */
int vm_path(const struct vm_state *vs, const char *name, char *out, size_t cap);
/* Called by vm_qemu.c when qemu has exited (vm.c). */
void vm_on_qemu_exit(struct vm_state *vs);

/* ---- vm_qmp.c ---- */
typedef void (*vm_qmp_done_fn)(struct vm_state *vs, uint64_t key, const char *err, void *arg);
/* Connects to the sandbox's qmp.sock (retrying while qemu comes up). NULL on no memory. */
struct vm_qmp *vm_qmp_open(struct vm_state *vs);
void vm_qmp_close(struct vm_qmp *q, int answer);
/* Sends a command without arguments (stop, cont, quit, query-status); done(vs, key,
 * NULL or an error text, arg) when it answers, or with an error when the connection
 * goes. Commands wait while the connection comes up. 0 or -1. */
int vm_qmp_command(struct vm_qmp *q, const char *cmd, uint64_t key, vm_qmp_done_fn done,
                   void *arg);
/* Forgets the callback of every command for key (its caller left); arg is then the
 * caller's to free (vm_qmp_forget returns it, or NULL). */
void *vm_qmp_forget(struct vm_qmp *q, uint64_t key);
/* The accel QMP reported (query-kvm), "" until known. */
const char *vm_qmp_accel(const struct vm_qmp *q);

/* ---- vm_agent.c ---- */
struct vm_agent *vm_agent_open(struct vm_state *vs);
/* Closes the connection; pending requests are answered with an error (answer 1), only
 * the execs answered and the queries dropped (2: the sandbox is released), or all
 * dropped (0). */
void vm_agent_close(struct vm_agent *a, int answer);
/* Called by vm_agent.c once HELLO answered (vm.c). */
void vm_on_agent_hello(struct vm_state *vs);
/* Called by vm_agent.c when the main workload exits (vm.c). */
void vm_on_main_exit(struct vm_state *vs, const struct sbx_exit *ex);

/* ---- vm_ops.c (through the agent) ---- */
int vm_agent_exec(struct vm_agent *a, const struct sbx_strv *cmd, const struct sbx_exec_opts *o,
                  int main, uint64_t key, sbx_exec_done_fn done, struct sbx_err *err);
int vm_agent_copy_to(struct vm_agent *a, const char *path, const char *data, size_t len,
                     uint64_t key, sbx_value_done_fn done, struct sbx_err *err);
int vm_agent_copy_from(struct vm_agent *a, const char *path, uint64_t key,
                       sbx_value_done_fn done, struct sbx_err *err);
int vm_agent_query(struct vm_agent *a, int metrics, uint64_t key, sbx_value_done_fn done,
                   struct sbx_err *err);
/* Cancels the request for key (KILL to an exec); 1 if one existed. */
int vm_agent_cancel(struct vm_agent *a, uint64_t key);
/* Registers the main workload (id 0) already running in the guest (adoption). */
void vm_agent_keep_main(struct vm_agent *a);
/* Sends SHUTDOWN. 0 or -1. */
int vm_agent_shutdown(struct vm_agent *a);

/* Sets err to {backend, vm, printf...}. */
void vm_err(struct sbx_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int64_t vm_now_ms(void);


#endif
