/* Output FIFOs watched without holding them open: one inotify descriptor for every
 * process sandbox, a watch (IN_MODIFY, which a write to a named FIFO raises) per FIFO.
 * An idle sandbox costs sandboxd no descriptor: it opens a FIFO only to drain it. A
 * descriptor holder (fdhold.h) keeps each FIFO open meanwhile, so that its buffer
 * outlives the workload. The workload keeps its FIFOs open read-write itself (spawn.c),
 * so it never sees SIGPIPE and blocks once a FIFO is full while nobody drains it. */
#ifndef SBX_BACKENDS_PROCESS_FIFOWATCH_H
#define SBX_BACKENDS_PROCESS_FIFOWATCH_H

struct event_base;

/* Called on the loop when the FIFO behind a watch was written to (or, after the kernel's
 * event queue overflowed, for every watch: a spurious call must be harmless). */
typedef void (*sbx_fifowatch_fn)(void *arg, int stream);

/* Watches the FIFO at path (IN_MODIFY); cb(arg, stream) runs for each write the loop
 * sees. The shared inotify descriptor is made on first use on base. Returns the watch
 * (>= 0), or -1 with errno (EMFILE/ENFILE out of descriptors, ENOSPC out of watches,
 * ENOMEM). */
int sbx_fifowatch_add(struct event_base *base, const char *path, sbx_fifowatch_fn cb, void *arg,
                      int stream);

/* Ends watch wd (from sbx_fifowatch_add); cb is never called for it again. -1 is ignored.
 * The last one closes the inotify descriptor. */
void sbx_fifowatch_remove(int wd);

/* Watches in force (for tests and info). */
long sbx_fifowatch_count(void);

#endif
