/* See fifowatch.h. Watches live in an open-addressed table keyed by watch descriptor
 * (linear probing, deletion by backward shift), so that an event finds its sandbox in
 * constant time with 20,000 watches. The table and the inotify descriptor are the
 * module's own (sandboxd has one event loop); the descriptor exists while a watch does. */
#define _GNU_SOURCE
#include "backends/process/fifowatch.h"

#include <errno.h>
#include <event2/event.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "util/log.h"

struct slot {
    int wd; /* -1: empty */
    int stream;
    sbx_fifowatch_fn cb;
    void *arg;
};

static int in_fd = -1;
static struct event *in_ev;
static struct slot *slots;
static size_t cap, used;

/* The home slot of wd in a table of cap (a power of two) slots. */
static size_t home(int wd) { return ((uint32_t)wd * 2654435761u) & (cap - 1); }

/* The slot holding wd, or NULL. */
static struct slot *find(int wd) {
    if (cap == 0)
        return NULL;
    for (size_t i = home(wd);; i = (i + 1) & (cap - 1)) {
        if (slots[i].wd == wd)
            return &slots[i];
        if (slots[i].wd < 0)
            return NULL;
    }
}

/* Puts s in the table, which has room; an entry with the same wd is replaced. */
static void put(const struct slot *s) {
    size_t i = home(s->wd);
    while (slots[i].wd >= 0 && slots[i].wd != s->wd)
        i = (i + 1) & (cap - 1);
    if (slots[i].wd < 0)
        used++;
    slots[i] = *s;
}

/* Doubles the table (or makes the first one): 0, or -1 when out of memory. */
static int grow(void) {
    size_t ncap = cap == 0 ? 1024 : cap * 2;
    struct slot *old = slots, *n = malloc(ncap * sizeof *n);
    size_t ocap = cap;
    if (n == NULL)
        return -1;
    for (size_t i = 0; i < ncap; i++)
        n[i].wd = -1;
    slots = n;
    cap = ncap;
    used = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].wd >= 0)
            put(&old[i]);
    free(old);
    return 0;
}

/* Every watch is told (the kernel dropped events). A callback may remove watches, so
 * the table is walked over a copy of the descriptors. */
static void notify_all(void) {
    int *wds = malloc((used > 0 ? used : 1) * sizeof *wds);
    size_t n = 0;
    if (wds == NULL)
        return;
    for (size_t i = 0; i < cap; i++)
        if (slots[i].wd >= 0)
            wds[n++] = slots[i].wd;
    for (size_t i = 0; i < n; i++) {
        struct slot *s = find(wds[i]);
        if (s != NULL)
            s->cb(s->arg, s->stream);
    }
    free(wds);
}

/* The inotify descriptor is readable: dispatches each event to its watch. */
static void inotify_cb(evutil_socket_t fd, short what, void *arg) {
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
    (void)what;
    (void)arg;
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                notify_all();
                continue;
            }
            struct slot *s = find(ev->wd);
            if (s != NULL && (ev->mask & IN_MODIFY))
                s->cb(s->arg, s->stream);
        }
    }
}

/* Makes the inotify descriptor and its event on first use: 0, or -1 with errno. */
static int ensure_fd(struct event_base *base) {
    if (in_fd >= 0)
        return 0;
    in_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (in_fd < 0)
        return -1;
    in_ev = event_new(base, in_fd, EV_READ | EV_PERSIST, inotify_cb, NULL);
    if (in_ev == NULL || event_add(in_ev, NULL) != 0) {
        if (in_ev != NULL)
            event_free(in_ev);
        in_ev = NULL;
        close(in_fd);
        in_fd = -1;
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

/* See fifowatch.h. */
int sbx_fifowatch_add(struct event_base *base, const char *path, sbx_fifowatch_fn cb, void *arg,
                      int stream) {
    if (ensure_fd(base) != 0)
        return -1;
    if ((used + 1) * 2 > cap && grow() != 0) {
        errno = ENOMEM;
        return -1;
    }
    int wd = inotify_add_watch(in_fd, path, IN_MODIFY);
    if (wd < 0)
        return -1;
    struct slot s = {wd, stream, cb, arg};
    put(&s);
    return wd;
}

/* See fifowatch.h. The following slots of the same run move back over the hole, so
 * that lookups never stop early. */
void sbx_fifowatch_remove(int wd) {
    struct slot *s = wd >= 0 ? find(wd) : NULL;
    if (s == NULL)
        return;
    inotify_rm_watch(in_fd, wd);
    size_t hole = (size_t)(s - slots);
    slots[hole].wd = -1;
    used--;
    for (size_t i = (hole + 1) & (cap - 1); slots[i].wd >= 0; i = (i + 1) & (cap - 1)) {
        size_t h = home(slots[i].wd);
        /* Move i into the hole unless its home lies cyclically in (hole, i]. */
        int stays = hole <= i ? (h > hole && h <= i) : (h > hole || h <= i);
        if (!stays) {
            slots[hole] = slots[i];
            slots[i].wd = -1;
            hole = i;
        }
    }
    if (used == 0) {
        /* No sandbox left to watch: sandboxd holds what it held before the first. */
        event_free(in_ev);
        in_ev = NULL;
        close(in_fd);
        in_fd = -1;
    }
}

/* See fifowatch.h. */
long sbx_fifowatch_count(void) { return (long)used; }
