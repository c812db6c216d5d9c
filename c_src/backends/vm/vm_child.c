/* Helper children (qemu-img, the KVM probe) run off the loop: stdout and stderr go to
 * one pipe read on the loop (at most OUT_MAX bytes kept), and a pidfd says when the
 * child has exited. The core's SIGCHLD handler reaps every child of sandboxd, so the
 * status is read first with waitid(WNOWAIT) as soon as the pidfd is readable; when the
 * core got there first the status is unknown (-2) and the caller judges by the output. */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backends/process/spawn.h"
#include "backends/vm/vm.h"
#include "core/core.h"

#define OUT_MAX (64u * 1024u)

struct vm_child {
    pid_t pid;
    int pidfd, outfd;
    struct event *pid_ev, *out_ev, *timer;
    void (*done)(void *arg, int status, const char *out, size_t len);
    void *arg;
    char out[OUT_MAX];
    size_t len;
};

/* Frees c and its events and descriptors (the child is left to the core to reap). */
static void child_free(struct vm_child *c) {
    if (c->pid_ev != NULL)
        event_free(c->pid_ev);
    if (c->out_ev != NULL)
        event_free(c->out_ev);
    if (c->timer != NULL)
        event_free(c->timer);
    if (c->pidfd >= 0)
        close(c->pidfd);
    if (c->outfd >= 0)
        close(c->outfd);
    free(c);
}

/* Drains the output pipe into c->out (the rest is read and dropped). */
static void drain(struct vm_child *c) {
    char buf[4096];
    ssize_t n;
    while (c->outfd >= 0 && (n = read(c->outfd, buf, sizeof buf)) > 0) {
        size_t take = (size_t)n < OUT_MAX - 1 - c->len ? (size_t)n : OUT_MAX - 1 - c->len;
        memcpy(c->out + c->len, buf, take);
        c->len += take;
    }
    c->out[c->len] = '\0';
}

/* Output readable. */
static void on_out(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    drain(arg);
}

/* Ends c: done with status and the output, then freed. */
static void finish(struct vm_child *c, int status) {
    drain(c);
    c->done(c->arg, status, c->out, c->len);
    child_free(c);
}

/* The child exited: its status if the core has not reaped it yet. */
static void on_exit_ev(evutil_socket_t fd, short what, void *arg) {
    struct vm_child *c = arg;
    siginfo_t si;
    (void)what;
    memset(&si, 0, sizeof si);
    int status = -2;
    if (syscall(SYS_waitid, P_PIDFD, fd, &si, WEXITED | WNOWAIT | WNOHANG, NULL) == 0 &&
        si.si_pid == c->pid)
        status = si.si_code == CLD_EXITED ? W_EXITCODE(si.si_status, 0) : si.si_status & 0x7f;
    finish(c, status);
}

/* Deadline: the child is killed and done gets -1. */
static void on_timeout(evutil_socket_t fd, short what, void *arg) {
    struct vm_child *c = arg;
    (void)fd;
    (void)what;
    kill(c->pid, SIGKILL);
    finish(c, -1);
}

/* See vm.h. */
struct vm_child *vm_child_run(struct sbx_core *core, char *const *argv, int timeout_ms,
                              void (*done)(void *arg, int status, const char *out, size_t len),
                              void *arg) {
    static char *const envp[] = {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                 "LC_ALL=C", NULL};
    struct vm_child *c = calloc(1, sizeof *c);
    int p[2] = {-1, -1}, confirm = -1, e = 0;
    const char *stage = NULL;
    if (c == NULL)
        return NULL;
    c->pidfd = c->outfd = -1;
    c->done = done;
    c->arg = arg;
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0)
        goto fail;
    struct sbx_spawn_spec spec = {.argv = argv, .envp = envp, .stdin_fd = -1,
                                  .stdout_fd = p[1], .stderr_fd = p[1]};
    c->pid = sbx_spawn_start(&spec, &confirm, &e, &stage);
    close(p[1]);
    p[1] = -1;
    c->outfd = p[0];
    if (c->pid < 0)
        goto fail;
    close(confirm);
    c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    c->pid_ev = event_new(core->base, c->pidfd, EV_READ, on_exit_ev, c);
    c->out_ev = event_new(core->base, c->outfd, EV_READ | EV_PERSIST, on_out, c);
    c->timer = evtimer_new(core->base, on_timeout, c);
    if (c->pidfd < 0 || c->pid_ev == NULL || c->out_ev == NULL || c->timer == NULL ||
        event_add(c->pid_ev, NULL) != 0 || event_add(c->out_ev, NULL) != 0 ||
        evtimer_add(c->timer, &tv) != 0) {
        kill(c->pid, SIGKILL);
        goto fail;
    }
    return c;
fail:
    if (p[1] >= 0)
        close(p[1]);
    if (c->outfd < 0 && p[0] >= 0)
        close(p[0]);
    child_free(c);
    return NULL;
}

/* See vm.h. */
void *vm_child_cancel(struct vm_child *c) {
    if (c == NULL)
        return NULL;
    void *arg = c->arg;
    kill(c->pid, SIGKILL);
    child_free(c);
    return arg;
}
