/* The freezer of a process sandbox's cgroup (see freezer.h). Operations under way are
 * kept in a short list (one per sandbox at most), each with its timer and, on v2, its
 * inotify descriptor on cgroup.events. */
#define _GNU_SOURCE
#include "backends/process/freezer.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/sandbox.h"
#include "util/clock.h"
#include "util/fdio.h"
#include "util/log.h"

#define POLL_MAX_MS 50 /* the polling timer: 1 ms, doubling up to this */

/* A freeze waiting to settle. Owned by the list from start to answer or forget. */
struct frz_op {
    struct frz_op *next;
    struct sbx_sandbox *sb;
    uint64_t key;
    sbx_value_done_fn done;
    struct sbx_cgroup cg;
    int inotify_fd;          /* v2: a watch on cgroup.events, else -1 */
    struct event *inotify_ev;
    struct event *timer;
    int poll_ms;
    int64_t deadline;        /* mono ms */
};

static struct frz_op *ops;

/* The freezer directory of cg ("" when it has none); cg keeps ownership. */
static const char *frz_dir(const struct sbx_cgroup *cg) {
    return cg->version == SBX_CG_V2 ? cg->unified : cg->freezer;
}

/* Reads dir/file into buf (NUL-terminated, truncated to cap). 0, or -1 with errno. */
static int read_file(const char *dir, const char *file, char *buf, size_t cap) {
    char path[SBX_CG_PATH_MAX + 32];
    int fd = -1, rc = -1;
    ssize_t n;
    if (snprintf(path, sizeof path, "%s/%s", dir, file) >= (int)sizeof path) {
        errno = ENAMETOOLONG;
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        goto out;
    do
        n = read(fd, buf, cap - 1);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        goto out;
    buf[n] = '\0';
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Writes the freezer file of cg (v1 freezer.state FROZEN/THAWED, v2 cgroup.freeze 1/0).
 * 0 or -1 with errno. */
static int write_state(const struct sbx_cgroup *cg, int freeze) {
    char path[SBX_CG_PATH_MAX + 32];
    int v2 = cg->version == SBX_CG_V2;
    const char *s = v2 ? (freeze ? "1" : "0") : (freeze ? "FROZEN" : "THAWED");
    snprintf(path, sizeof path, "%s/%s", frz_dir(cg), v2 ? "cgroup.freeze" : "freezer.state");
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = sbx_write_all(fd, s, strlen(s)), saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

/* Where a freeze of cg stands: 1 frozen, 0 still freezing, -1 thawed (asked by someone
 * else) or unreadable. */
static int settled(const struct sbx_cgroup *cg) {
    char buf[256];
    if (cg->version == SBX_CG_V2) {
        if (read_file(cg->unified, "cgroup.freeze", buf, sizeof buf) != 0 || buf[0] != '1')
            return -1;
        if (read_file(cg->unified, "cgroup.events", buf, sizeof buf) != 0)
            return -1;
        return strstr(buf, "frozen 1") != NULL;
    }
    if (read_file(cg->freezer, "freezer.state", buf, sizeof buf) != 0)
        return -1;
    if (strncmp(buf, "FROZEN", 6) == 0)
        return 1;
    return strncmp(buf, "FREEZING", 8) == 0 ? 0 : -1;
}

/* Unlinks op and frees it with its events and descriptor; answers nobody. */
static void op_free(struct frz_op *op) {
    for (struct frz_op **pp = &ops; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == op) {
            *pp = op->next;
            break;
        }
    }
    if (op->inotify_ev != NULL)
        event_free(op->inotify_ev);
    if (op->inotify_fd >= 0)
        close(op->inotify_fd);
    if (op->timer != NULL)
        event_free(op->timer);
    free(op);
}

/* Answers a caller: ok when reason is NULL, else {error, reason} or, for reason
 * "backend", {backend, Type, why}. */
static void reply(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                  const char *reason, const char *why) {
    if (reason == NULL) {
        ei_x_buff ok;
        ei_x_new(&ok);
        ei_x_encode_atom(&ok, "ok");
        done(sb, key, ok.buff, (size_t)ok.index, NULL);
        ei_x_free(&ok);
        return;
    }
    struct sbx_err err = {.reason_atom = reason};
    snprintf(err.detail, sizeof err.detail, "%s", why != NULL ? why : "");
    done(sb, key, NULL, 0, &err);
}

/* Frees op, then answers its caller (see reply). */
static void op_answer(struct frz_op *op, const char *reason, const char *why) {
    struct sbx_sandbox *sb = op->sb;
    uint64_t key = op->key;
    sbx_value_done_fn done = op->done;
    op_free(op);
    reply(sb, key, done, reason, why);
}

/* Looks at op's group: answers once frozen, thawed by someone else or past the deadline
 * (then thawed again: a half-frozen workload is no pause); else polls again later. */
static void op_check(struct frz_op *op) {
    int st = settled(&op->cg);
    if (st > 0) {
        op_answer(op, NULL, NULL);
        return;
    }
    if (st < 0) {
        op_answer(op, "backend", "the sandbox was thawed before it froze (stopped meanwhile)");
        return;
    }
    if (sbx_mono_ms() >= op->deadline) {
        char state[64] = "";
        (void)read_file(frz_dir(&op->cg), op->cg.version == SBX_CG_V2 ? "cgroup.events" : "freezer.state",
                        state, sizeof state);
        SBX_WARN("the freezer did not settle; thawed again", "id=%s state=\"%s\"", op->sb->id,
                 strtok(state, "\n") != NULL ? state : "");
        (void)write_state(&op->cg, 0);
        op_answer(op, "timeout", NULL);
        return;
    }
    struct timeval tv = {0, op->poll_ms * 1000};
    op->poll_ms = op->poll_ms * 2 < POLL_MAX_MS ? op->poll_ms * 2 : POLL_MAX_MS;
    evtimer_add(op->timer, &tv);
}

/* The polling timer. */
static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    op_check(arg);
}

/* v2: cgroup.events changed. Drains the inotify events, then looks. */
static void inotify_cb(evutil_socket_t fd, short what, void *arg) {
    char buf[1024];
    (void)what;
    while (read(fd, buf, sizeof buf) > 0)
        ;
    op_check(arg);
}

/* Sets up v2's watch on cgroup.events; without it the timer alone polls. */
static void watch_events(struct frz_op *op, struct event_base *base) {
    char path[SBX_CG_PATH_MAX + 32];
    op->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (op->inotify_fd < 0)
        return;
    snprintf(path, sizeof path, "%s/cgroup.events", op->cg.unified);
    if (inotify_add_watch(op->inotify_fd, path, IN_MODIFY) < 0)
        return;
    op->inotify_ev = event_new(base, op->inotify_fd, EV_READ | EV_PERSIST, inotify_cb, op);
    if (op->inotify_ev != NULL && event_add(op->inotify_ev, NULL) != 0) {
        event_free(op->inotify_ev);
        op->inotify_ev = NULL;
    }
}

/* The operation under way for sb, or NULL. */
static struct frz_op *op_of(const struct sbx_sandbox *sb) {
    for (struct frz_op *op = ops; op != NULL; op = op->next)
        if (op->sb == sb)
            return op;
    return NULL;
}

/* See freezer.h. */
int sbx_freezer_set(struct sbx_sandbox *sb, struct event_base *base, const struct sbx_cgroup *cg,
                    int freeze, uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    struct frz_op *op = NULL, *old = op_of(sb);
    err->reason_atom = "backend";
    if (cg == NULL || frz_dir(cg)[0] == '\0') {
        snprintf(err->detail, sizeof err->detail, "no freezer cgroup for this sandbox");
        return -1;
    }
    if (freeze) {
        op = calloc(1, sizeof *op);
        if (op == NULL || (op->timer = evtimer_new(base, timer_cb, op)) == NULL) {
            free(op);
            snprintf(err->detail, sizeof err->detail, "out of memory");
            return -1;
        }
    }
    if (write_state(cg, freeze) != 0) {
        snprintf(err->detail, sizeof err->detail, "cannot write the freezer: %s", strerror(errno));
        if (op != NULL)
            event_free(op->timer);
        free(op);
        return -1;
    }
    if (old != NULL)
        op_answer(old, "backend", freeze ? "superseded by another pause" : "resumed meanwhile");
    if (!freeze) {
        reply(sb, key, done, NULL, NULL); /* thawed at the write */
        return 0;
    }
    op->sb = sb;
    op->key = key;
    op->done = done;
    op->cg = *cg;
    op->inotify_fd = -1;
    op->poll_ms = 1;
    op->deadline = sbx_mono_ms() + SBX_FREEZE_TIMEOUT_MS;
    op->next = ops;
    ops = op;
    if (cg->version == SBX_CG_V2)
        watch_events(op, base);
    /* Never inside this call for a freeze: the first look comes from the loop. */
    struct timeval tv = {0, 0};
    evtimer_add(op->timer, &tv);
    return 0;
}

/* See freezer.h. */
int sbx_freezer_frozen(const struct sbx_cgroup *cg) {
    char buf[64];
    if (cg == NULL || frz_dir(cg)[0] == '\0')
        return -1;
    if (cg->version == SBX_CG_V2)
        return read_file(cg->unified, "cgroup.freeze", buf, sizeof buf) == 0 ? buf[0] == '1' : -1;
    if (read_file(cg->freezer, "freezer.state", buf, sizeof buf) != 0)
        return -1;
    return strncmp(buf, "FROZEN", 6) == 0 || strncmp(buf, "FREEZING", 8) == 0;
}

/* See freezer.h. */
void sbx_freezer_forget(struct sbx_sandbox *sb) {
    struct frz_op *op = op_of(sb);
    if (op != NULL)
        op_free(op);
}
