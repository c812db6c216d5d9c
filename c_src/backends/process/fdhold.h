/* Descriptor holders: small child processes of sandboxd that keep descriptors open on its
 * behalf, so that what they keep alive does not count against sandboxd's own open-file
 * limit.
 *
 * Used for the process backend's output FIFOs: a FIFO's buffered data dies with its last
 * open descriptor, so something must hold each FIFO open until sandboxd has drained what
 * an exited workload wrote. A holder gets the descriptors over a socketpair (SCM_RIGHTS)
 * and closes them when told to drop them. It has its own descriptor table and its own
 * open-file limit (sandboxd's, inherited); a second holder starts when the first is full.
 * A holder ends with sandboxd (PR_SET_PDEATHSIG, and end-of-file on its socket); a
 * restarted sandboxd hands every adopted sandbox's FIFOs to new holders. A holder that
 * holds nothing any more is ended, so that with no sandbox sandboxd has no holder.
 *
 * Costs sandboxd one descriptor (the socket) per holder. Everything runs on the loop and
 * never blocks: sends are non-blocking, and a drop that does not fit the socket now is
 * queued and sent when it is writable. */
#ifndef SBX_BACKENDS_PROCESS_FDHOLD_H
#define SBX_BACKENDS_PROCESS_FDHOLD_H

#include <sys/types.h>

struct event_base;

/* Where a held pair lives: holder index, slot, and that holder's generation (an index is
 * reused once its holder is gone); holder -1 when nothing is held. */
struct sbx_fdhold_ref {
    int holder;
    int slot;
    unsigned gen;
};

#define SBX_FDHOLD_NONE ((struct sbx_fdhold_ref){-1, -1, 0})

/* Hands fds[0] and fds[1] (both stay the caller's, to close) to a holder, starting one
 * when none has room. 0 with *ref set, or -1 with errno (EMFILE/ENFILE when sandboxd is
 * out of descriptors for a new holder's socket, EAGAIN when no holder can take them now,
 * ENOMEM) and *ref left as none. */
int sbx_fdhold_put(struct event_base *base, const int fds[2], struct sbx_fdhold_ref *ref);

/* Tells the holder to close what *ref holds (queued if the socket is full); *ref becomes
 * none. A none ref is ignored. */
void sbx_fdhold_drop(struct sbx_fdhold_ref *ref);

/* Pairs held now over all holders. */
long sbx_fdhold_held(void);

/* Descriptors the holders have open now (two per held pair and each one's socket end). */
long sbx_fdhold_fds(void);

/* Pairs the holders could still take: free slots of the live ones, and what holders not
 * started yet would hold at sandboxd's present open-file limit. */
long sbx_fdhold_room(void);

/* Up to cap live holders' pids into out; returns how many. */
int sbx_fdhold_pids(pid_t *out, int cap);

#endif
