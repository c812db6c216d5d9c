/* Destroy's uid sweep, batched (uidsweep.h). One helper process at a time, forked from
 * sandboxd and staying root in its saved uid: for each uid of its batch it becomes that
 * uid (real and effective; capabilities off), sends SIGKILL to every process it may
 * signal (kill(-1): the processes whose real or saved uid is that uid, under the tasklist
 * lock, so a fork cannot slip past) twice, and takes root back for the next. A shared page
 * tells how far it got, so a helper that fails or is held up (a workload of a uid can
 * SIGSTOP it: it runs as that uid then) costs a try to that one uid only. */
#define _GNU_SOURCE
#include "backends/process/uidsweep.h"

#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/core.h"
#include "util/clock.h"
#include "util/log.h"

#define BATCH_MAX 4096
/* A helper whose progress stood still this long is killed (its uid loses a try). */
#define STUCK_MS 2000
#define SWEEP_TRIES 3
/* Helpers start at most this often: each fork of sandboxd (page tables, then its pages
 * copied on write) costs more than sweeping many uids in one helper. */
#define GAP_MS 100

struct entry {
    uid_t uid;
    gid_t gid;
    int tries;
};

/* The sweeper: one per sandboxd (there is one core). Owned here from the first add. */
static struct {
    struct sbx_core *core;
    struct entry *q;             /* queued, in order */
    size_t n, cap;
    struct entry run[BATCH_MAX]; /* the helper's batch */
    size_t run_n;
    pid_t helper;                /* 0 when none runs */
    uint32_t *progress;          /* shared with the helper: uids of run[] it finished */
    uint32_t seen;               /* progress at the watchdog's last look */
    struct event *kick;          /* starts a helper GAP_MS after the last one started */
    int64_t started_ms;          /* when the last helper started (monotonic) */
    struct event *watchdog;
} S;

/* The helper's body, in the forked child: sweeps e[0..n) in order, counting in *progress.
 * Exits 0 when all are done, 1 when a uid could not be taken on (progress says which).
 * Never returns. */
static void helper_main(const struct entry *e, size_t n, uint32_t *progress) {
    for (size_t i = 0; i < n; i++) {
        uid_t u = e[i].uid;
        gid_t g = e[i].gid;
        /* Root back first (saved uid 0), then the group, then the uid. kill(-1) as root
         * would reach every process on the host: never without being exactly u. */
        if (u == 0 || setresuid(0, 0, 0) != 0 || setgroups(0, NULL) != 0 ||
            setresgid(g, g, g) != 0 || setresuid(u, u, 0) != 0 || getuid() != u ||
            geteuid() != u)
            _exit(1);
        kill(-1, SIGKILL);
        kill(-1, SIGKILL);
        __atomic_store_n(progress, (uint32_t)(i + 1), __ATOMIC_RELEASE);
    }
    _exit(0);
}

/* Moves up to BATCH_MAX queued uids into run[] and forks the helper for them; with none
 * queued or a helper running, does nothing. A fork that fails leaves them queued and
 * tries again on the next kick. */
static void start_helper(void) {
    if (S.helper > 0 || S.n == 0)
        return;
    size_t k = S.n < BATCH_MAX ? S.n : BATCH_MAX;
    memcpy(S.run, S.q, k * sizeof *S.q);
    __atomic_store_n(S.progress, 0, __ATOMIC_RELEASE);
    pid_t pid = fork();
    if (pid == 0)
        helper_main(S.run, k, S.progress);
    if (pid < 0) {
        SBX_WARN("cannot start the uid sweep helper", "errno=%d queued=%zu", errno, S.n);
        struct timeval tv = {0, 100000};
        evtimer_add(S.kick, &tv);
        return;
    }
    memmove(S.q, S.q + k, (S.n - k) * sizeof *S.q);
    S.n -= k;
    S.run_n = k;
    S.helper = pid;
    S.seen = 0;
    S.started_ms = sbx_mono_ms();
    struct timeval tv = {STUCK_MS / 1000, (STUCK_MS % 1000) * 1000};
    evtimer_add(S.watchdog, &tv);
}

/* Appends e to the queue (room was made by sbx_uidsweep_add or is there: run[] came from
 * it). */
static void requeue(const struct entry *e) { S.q[S.n++] = *e; }

/* The helper ended with status (or was found stuck and killed): the uids it finished go
 * back to the pool; the one it was on loses a try (at SWEEP_TRIES it stays out of the
 * pool); the rest are queued again. */
static void helper_done(int status) {
    uint32_t done = __atomic_load_n(S.progress, __ATOMIC_ACQUIRE);
    if (done > S.run_n)
        done = (uint32_t)S.run_n;
    evtimer_del(S.watchdog);
    S.helper = 0;
    for (uint32_t i = 0; i < done; i++)
        sbx_uid_pool_put(&S.core->uids, S.run[i].uid);
    if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0) && done < S.run_n) {
        struct entry *e = &S.run[done];
        if (++e->tries >= SWEEP_TRIES)
            SBX_WARN("cannot sweep the uid of a destroyed sandbox; it stays out of the pool",
                     "uid=%u", (unsigned)e->uid);
        else
            requeue(e);
        done++;
    }
    for (size_t i = done; i < S.run_n; i++)
        requeue(&S.run[i]);
    S.run_n = 0;
}

/* Arms kick to start a helper GAP_MS after the last one started (at once if that is past),
 * unless it is armed already. */
static void kick_later(void) {
    if (evtimer_pending(S.kick, NULL))
        return;
    int64_t wait = S.started_ms + GAP_MS - sbx_mono_ms();
    if (wait < 0)
        wait = 0;
    struct timeval tv = {(time_t)(wait / 1000), (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(S.kick, &tv);
}

/* kick: GAP_MS after the last helper started, with uids queued (or a failed fork's retry). */
static void kick_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    start_helper();
}

/* watchdog: every STUCK_MS while a helper runs; one whose progress stood still since the
 * last look is killed (its reap goes on through sbx_uidsweep_reaped). */
static void watchdog_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    (void)arg;
    uint32_t now = __atomic_load_n(S.progress, __ATOMIC_ACQUIRE);
    if (S.helper <= 0)
        return;
    if (now == S.seen) {
        kill(S.helper, SIGKILL);
        return;
    }
    S.seen = now;
    struct timeval tv = {STUCK_MS / 1000, (STUCK_MS % 1000) * 1000};
    evtimer_add(S.watchdog, &tv);
}

/* Sets up the sweeper on first use: 0, or -1 when out of memory. */
static int setup(struct sbx_core *core) {
    if (S.core != NULL)
        return 0;
    void *page = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return -1;
    S.kick = evtimer_new(core->base, kick_cb, NULL);
    S.watchdog = evtimer_new(core->base, watchdog_cb, NULL);
    if (S.kick == NULL || S.watchdog == NULL) {
        if (S.kick != NULL)
            event_free(S.kick);
        if (S.watchdog != NULL)
            event_free(S.watchdog);
        S.kick = S.watchdog = NULL;
        munmap(page, 4096);
        return -1;
    }
    S.progress = page;
    S.core = core;
    return 0;
}

/* See uidsweep.h. The queue keeps room for every uid in a helper too, so that a helper's
 * end can always queue its unfinished uids again. */
int sbx_uidsweep_add(struct sbx_core *core, uid_t uid, gid_t gid) {
    if (setup(core) != 0)
        return -1;
    if (S.n + S.run_n + 1 > S.cap) {
        size_t cap = S.cap ? S.cap * 2 : 256;
        while (cap < S.n + S.run_n + 1)
            cap *= 2;
        struct entry *q = realloc(S.q, cap * sizeof *q);
        if (q == NULL)
            return -1;
        S.q = q;
        S.cap = cap;
    }
    S.q[S.n++] = (struct entry){uid, gid, 0};
    if (S.helper == 0)
        kick_later();
    return 0;
}

/* See uidsweep.h. */
int sbx_uidsweep_reaped(pid_t pid, int status) {
    if (S.helper <= 0 || pid != S.helper)
        return 0;
    helper_done(status);
    if (S.n > 0)
        kick_later();
    return 1;
}

/* See uidsweep.h. */
size_t sbx_uidsweep_pending(void) { return S.n + S.run_n; }

/* Waits for the helper, bounded: STUCK_MS without progress and it is killed. Then its
 * end is dealt with as a reap would. */
static void wait_helper(void) {
    int status = 0;
    uint32_t last = 0;
    int64_t since = sbx_mono_ms();
    for (;;) {
        pid_t r = waitpid(S.helper, &status, WNOHANG);
        if (r == S.helper || (r < 0 && errno != EINTR))
            break;
        uint32_t now = __atomic_load_n(S.progress, __ATOMIC_ACQUIRE);
        if (now != last) {
            last = now;
            since = sbx_mono_ms();
        } else if (sbx_mono_ms() - since > STUCK_MS) {
            kill(S.helper, SIGKILL);
        }
        usleep(1000);
    }
    helper_done(status);
}

/* See uidsweep.h. Blocking: only at stop, after the loop. */
void sbx_uidsweep_stop(struct sbx_core *core) {
    (void)core;
    if (S.core == NULL)
        return;
    while (S.helper > 0 || S.n > 0) {
        if (S.helper <= 0)
            start_helper();
        if (S.helper <= 0)
            break; /* cannot fork: the claims stay; the next start scans /proc */
        wait_helper();
    }
    event_free(S.kick);
    event_free(S.watchdog);
    munmap(S.progress, 4096);
    free(S.q);
    memset(&S, 0, sizeof S);
}
