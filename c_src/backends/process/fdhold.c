/* See fdhold.h. The holders' table is this module's own (sandboxd has one event loop).
 * A holder's index is reused once it is gone, with a new generation, so that a ref to a
 * holder that died stays harmless. */
#define _GNU_SOURCE
#include "backends/process/fdhold.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/fdlimit.h"
#include "util/log.h"

#define MAX_HOLDERS 64
/* Descriptors a holder keeps for itself (its socket, stdio) below its open-file limit. */
#define HOLDER_SPARE 16
#define OP_HOLD 1u
#define OP_DROP 2u

struct msg {
    uint32_t op;
    uint32_t slot;
};

struct holder {
    unsigned gen;          /* bumped each time the index gets a new holder */
    pid_t pid;             /* 0 once it is gone */
    int sock;              /* sandboxd's end, non-blocking; -1 once gone */
    int cap, used, hint;   /* slots, slots in use, where the next free search starts */
    uint8_t *busy;         /* per slot: held, or a drop still queued */
    uint32_t *queue;       /* drops that did not fit the socket yet */
    size_t nqueue, qcap;
    struct event *wev;     /* the socket is writable again: send the queue */
};

static struct holder holders[MAX_HOLDERS];
static int nholders; /* indices in use so far (some may be gone) */

/* The holder's life: stores each received pair at its slot, closes a slot's pair on drop,
 * and exits when sandboxd's end closes. Runs in a forked child of a process that may have
 * other threads, so it makes only async-signal-safe calls (no malloc). Never returns. */
static void holder_main(int sock, int cap, pid_t parent) {
    sigset_t none;
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(0);
    (void)prctl(PR_SET_NAME, "sbx-fdhold");
    for (int sig = 1; sig < NSIG; sig++)
        (void)signal(sig, SIG_DFL);
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    if (sock != 3 && dup2(sock, 3) != 3)
        _exit(1);
    close_range(4, ~0u, 0);
    size_t bytes = (size_t)cap * 2 * sizeof(int);
    int *fds = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (fds == MAP_FAILED)
        _exit(1);
    for (size_t i = 0; i < (size_t)cap * 2; i++)
        fds[i] = -1;
    for (;;) {
        struct msg m;
        char ctl[CMSG_SPACE(2 * sizeof(int))];
        struct iovec iov = {&m, sizeof m};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                            .msg_controllen = sizeof ctl};
        int got[2] = {-1, -1};
        ssize_t n = recvmsg(3, &mh, MSG_CMSG_CLOEXEC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0);
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                for (size_t k = 0; k < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int) && k < 2; k++)
                    memcpy(&got[k], CMSG_DATA(c) + k * sizeof(int), sizeof(int));
        int ok = (size_t)n == sizeof m && m.slot < (uint32_t)cap;
        for (int k = 0; ok && k < 2 && (m.op == OP_HOLD || m.op == OP_DROP); k++) {
            if (fds[m.slot * 2 + k] >= 0)
                close(fds[m.slot * 2 + k]);
            fds[m.slot * 2 + k] = m.op == OP_HOLD ? got[k] : -1;
            if (m.op == OP_HOLD)
                got[k] = -1;
        }
        for (int k = 0; k < 2; k++)
            if (got[k] >= 0)
                close(got[k]);
    }
}

/* Forgets holder h and frees its table; closing the socket ends the process (end-of-file),
 * and what it held closes with it. The SIGCHLD handler reaps it. No-op when gone. */
static void holder_end(struct holder *h) {
    if (h->sock < 0)
        return;
    if (h->wev != NULL)
        event_free(h->wev);
    close(h->sock);
    free(h->busy);
    free(h->queue);
    unsigned gen = h->gen;
    memset(h, 0, sizeof *h);
    h->gen = gen;
    h->sock = -1;
}

/* The holder's socket failed: it is gone, and so is what it held. */
static void holder_gone(struct holder *h) {
    SBX_WARN("descriptor holder ended", "pid=%d held=%d", (int)h->pid, h->used);
    holder_end(h);
}

/* Ends h when it holds nothing and has nothing queued. */
static void retire_if_idle(struct holder *h) {
    if (h->sock >= 0 && h->used == 0 && h->nqueue == 0)
        holder_end(h);
}

/* Sends one message (with fds when not NULL) without blocking: 0, or -1 with errno. */
static int send_msg(struct holder *h, uint32_t op, uint32_t slot, const int *fds) {
    struct msg m = {op, slot};
    char ctl[CMSG_SPACE(2 * sizeof(int))];
    struct iovec iov = {&m, sizeof m};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    if (fds != NULL) {
        memset(ctl, 0, sizeof ctl);
        mh.msg_control = ctl;
        mh.msg_controllen = sizeof ctl;
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(2 * sizeof(int));
        memcpy(CMSG_DATA(c), fds, 2 * sizeof(int));
    }
    for (;;) {
        ssize_t n = sendmsg(h->sock, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n == (ssize_t)sizeof m)
            return 0;
        if (n < 0 && errno == EINTR)
            continue;
        if (n >= 0)
            errno = EIO;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS)
            holder_gone(h);
        return -1;
    }
}

/* The socket is writable: sends queued drops in order and frees their slots. */
static void flush_cb(evutil_socket_t fd, short what, void *arg) {
    struct holder *h = arg;
    size_t i = 0;
    (void)fd;
    (void)what;
    while (h->sock >= 0 && i < h->nqueue && send_msg(h, OP_DROP, h->queue[i], NULL) == 0) {
        h->busy[h->queue[i]] = 0;
        h->used--;
        i++;
    }
    if (h->sock < 0)
        return;
    memmove(h->queue, h->queue + i, (h->nqueue - i) * sizeof *h->queue);
    h->nqueue -= i;
    if (h->nqueue > 0)
        event_add(h->wev, NULL);
    else
        retire_if_idle(h);
}

/* Slots a holder started now gets: pairs within its open-file limit (sandboxd's). */
static int new_cap(void) {
    long limit = sbx_fdlimit_current();
    long cap = limit > 2 * HOLDER_SPARE ? (limit - HOLDER_SPARE) / 2 : 0;
    return cap > (1 << 20) ? 1 << 20 : (int)cap;
}

/* Starts a holder at the first index without one: its index, or -1 with errno. */
static int start_holder(struct event_base *base) {
    int idx = 0;
    while (idx < nholders && holders[idx].sock >= 0)
        idx++;
    struct holder *h = &holders[idx < MAX_HOLDERS ? idx : 0];
    int sv[2] = {-1, -1};
    int cap = new_cap();
    int rc = -1;
    if (idx >= MAX_HOLDERS || cap <= 0) {
        errno = EAGAIN;
        return -1;
    }
    unsigned gen = h->gen + 1;
    memset(h, 0, sizeof *h);
    h->gen = gen;
    h->sock = -1;
    h->busy = calloc((size_t)cap, 1);
    if (h->busy == NULL) {
        errno = ENOMEM;
        goto done;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        goto done;
    int sndbuf = 1 << 20;
    (void)setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    h->wev = event_new(base, sv[0], EV_WRITE, flush_cb, h);
    if (h->wev == NULL) {
        errno = ENOMEM;
        goto done;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        goto done;
    if (pid == 0)
        holder_main(sv[1], cap, parent);
    (void)evutil_make_socket_nonblocking(sv[0]);
    h->pid = pid;
    h->sock = sv[0];
    h->cap = cap;
    sv[0] = -1;
    if (idx == nholders)
        nholders++;
    SBX_INFO("descriptor holder started", "pid=%d slots=%d", (int)pid, cap);
    rc = idx;
done:
    if (rc < 0) {
        int e = errno;
        if (h->wev != NULL)
            event_free(h->wev);
        free(h->busy);
        memset(h, 0, sizeof *h);
        h->gen = gen;
        h->sock = -1;
        errno = e;
    }
    for (int i = 0; i < 2; i++)
        if (sv[i] >= 0)
            close(sv[i]);
    return rc;
}

/* A free slot of h (searched from its hint), or -1. */
static int free_slot(struct holder *h) {
    for (int k = 0; k < h->cap; k++) {
        int s = (h->hint + k) % h->cap;
        if (!h->busy[s]) {
            h->hint = (s + 1) % h->cap;
            return s;
        }
    }
    return -1;
}

/* Tries to hand fds to h: 0 with *ref set, or -1. */
static int put_in(int idx, const int fds[2], struct sbx_fdhold_ref *ref) {
    struct holder *h = &holders[idx];
    if (h->sock < 0 || h->used >= h->cap)
        return -1;
    int s = free_slot(h);
    if (s < 0 || send_msg(h, OP_HOLD, (uint32_t)s, fds) != 0)
        return -1;
    h->busy[s] = 1;
    h->used++;
    ref->holder = idx;
    ref->slot = s;
    ref->gen = h->gen;
    return 0;
}

/* See fdhold.h. */
int sbx_fdhold_put(struct event_base *base, const int fds[2], struct sbx_fdhold_ref *ref) {
    *ref = SBX_FDHOLD_NONE;
    for (int i = 0; i < nholders; i++)
        if (put_in(i, fds, ref) == 0)
            return 0;
    int idx = start_holder(base);
    if (idx < 0)
        return -1;
    if (put_in(idx, fds, ref) == 0)
        return 0;
    retire_if_idle(&holders[idx]);
    errno = EAGAIN;
    return -1;
}

/* See fdhold.h. */
void sbx_fdhold_drop(struct sbx_fdhold_ref *ref) {
    if (ref->holder < 0 || ref->holder >= nholders) {
        *ref = SBX_FDHOLD_NONE;
        return;
    }
    struct holder *h = &holders[ref->holder];
    uint32_t s = (uint32_t)ref->slot;
    unsigned gen = ref->gen;
    *ref = SBX_FDHOLD_NONE;
    if (h->sock < 0 || h->gen != gen || s >= (uint32_t)h->cap || !h->busy[s])
        return;
    if (h->nqueue == 0 && send_msg(h, OP_DROP, s, NULL) == 0) {
        h->busy[s] = 0;
        h->used--;
        retire_if_idle(h);
        return;
    }
    if (h->sock < 0)
        return;
    if (h->nqueue == h->qcap) {
        size_t ncap = h->qcap ? h->qcap * 2 : 64;
        uint32_t *nq = realloc(h->queue, ncap * sizeof *nq);
        if (nq == NULL) {
            SBX_WARN("cannot queue a descriptor drop", "holder=%d slot=%u", (int)h->pid, s);
            return;
        }
        h->queue = nq;
        h->qcap = ncap;
    }
    h->queue[h->nqueue++] = s;
    event_add(h->wev, NULL);
}

/* See fdhold.h. */
long sbx_fdhold_held(void) {
    long n = 0;
    for (int i = 0; i < nholders; i++)
        n += holders[i].sock >= 0 ? holders[i].used : 0;
    return n;
}

/* See fdhold.h. */
long sbx_fdhold_fds(void) {
    long n = 0;
    for (int i = 0; i < nholders; i++)
        n += holders[i].sock >= 0 ? 2L * holders[i].used + 1 : 0;
    return n;
}

/* See fdhold.h. */
long sbx_fdhold_room(void) {
    long room = 0;
    int live = 0;
    for (int i = 0; i < nholders; i++) {
        if (holders[i].sock >= 0) {
            room += holders[i].cap - holders[i].used;
            live++;
        }
    }
    return room + (long)(MAX_HOLDERS - live) * new_cap();
}

/* See fdhold.h. */
int sbx_fdhold_pids(pid_t *out, int cap) {
    int n = 0;
    for (int i = 0; i < nholders && n < cap; i++)
        if (holders[i].pid > 0)
            out[n++] = holders[i].pid;
    return n;
}
