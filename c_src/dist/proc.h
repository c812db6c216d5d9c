/* The node's process table: its own pids, registered names, and the links and
 * monitors that processes on other nodes hold on them. Pure data structure: sending
 * signals is the node's job (dist/node.h). */
#ifndef SBX_DIST_PROC_H
#define SBX_DIST_PROC_H

#include <stddef.h>
#include <stdint.h>

/* A process of another node, named by the connection to that node. conn_id 0 means the
 * node is not connected (signals to it are dropped). */
struct sbx_rpid {
    uint64_t conn_id;
    uint32_t num, serial, creation;
};

struct sbx_link {
    struct sbx_link *next;
    struct sbx_rpid pid;
};

/* A monitor another process holds on one of ours. ref is the reference exactly as the
 * watcher encoded it (no version byte), echoed back in MONITOR_P_EXIT. */
struct sbx_monitor {
    struct sbx_monitor *next;
    struct sbx_rpid watcher;
    char *ref;
    size_t ref_len;
    int by_name;
};

struct sbx_proc;

/* Behaviour of a process. Every member may be NULL. */
struct sbx_proc_ops {
    /* A message arrived; msg is a validated term with its version byte. from is NULL
     * when the sender is unknown (plain SEND). */
    void (*message)(struct sbx_proc *p, const struct sbx_rpid *from, const char *msg,
                    size_t len);
    /* The process is killed before finishing (exit signal, caller gone): release what
     * it holds in p->data. The table frees p afterwards. */
    void (*kill)(struct sbx_proc *p);
    /* The connection conn_id went down (after its links and monitors were dropped). */
    void (*conn_down)(struct sbx_proc *p, uint64_t conn_id);
    /* A watcher removed its monitor (for example an erpc caller that timed out). */
    void (*demonitored)(struct sbx_proc *p);
    /* 1: the process traps exits and drops the EXIT messages: exit signals never kill it,
     * and a link through a connection that goes down runs conn_down instead of kill. */
    int traps_exits;
};

struct sbx_proc {
    uint32_t num, serial;
    const char *name; /* registered name (static string) or NULL */
    const struct sbx_proc_ops *ops;
    void *data; /* owned by ops */
    struct sbx_link *links;
    struct sbx_monitor *monitors;
    char *fence_peer; /* the one fenced peer (a sandbox's node) that may reach this process,
                         owned here; NULL: no fenced peer may (see dist/control.c) */
    struct sbx_proc *hnext;
};

struct sbx_proc_table {
    struct sbx_proc **buckets;
    size_t nbuckets; /* power of two */
    size_t count;
    uint32_t counter;
};

/* Initialises an empty table. 0, or -1 on allocation failure (t then holds nothing). */
int sbx_proc_table_init(struct sbx_proc_table *t);

/* Frees every process still in the table (without calling ops) and the table. */
void sbx_proc_table_free(struct sbx_proc_table *t);

/* Creates a process with a fresh pid (15-bit number, never 0, and 13-bit serial: valid
 * with or without V4_NC). The table owns it. NULL on allocation failure. */
struct sbx_proc *sbx_proc_spawn(struct sbx_proc_table *t, const struct sbx_proc_ops *ops,
                                void *data);

/* Lets the fenced peer peer_name (a node authenticated with its own per-peer cookie) send
 * to, monitor and answer p; any other fenced peer is still refused. The name is copied
 * (an earlier one replaced). 0, or -1 (no memory: p unchanged). */
int sbx_proc_serve_peer(struct sbx_proc *p, const char *peer_name);

/* 1 if the fenced peer peer_name may reach p (sbx_proc_serve_peer named it), else 0. */
int sbx_proc_serves(const struct sbx_proc *p, const char *peer_name);

/* The process with that pid, or NULL. */
struct sbx_proc *sbx_proc_find(const struct sbx_proc_table *t, uint32_t num, uint32_t serial);

/* The process registered under name, or NULL. Linear: names are few. */
struct sbx_proc *sbx_proc_whereis(const struct sbx_proc_table *t, const char *name);

/* Removes p from the table and frees it with its links and monitors (not p->data). */
void sbx_proc_free(struct sbx_proc_table *t, struct sbx_proc *p);

/* Links: add is idempotent; 0 or -1 (no memory). remove returns 1 if a link existed. */
int sbx_proc_link(struct sbx_proc *p, const struct sbx_rpid *pid);
int sbx_proc_unlink(struct sbx_proc *p, const struct sbx_rpid *pid);

/* Monitors: ref (ref_len bytes) is copied. 0 or -1 (no memory). */
int sbx_proc_monitor(struct sbx_proc *p, const struct sbx_rpid *watcher, const char *ref,
                     size_t ref_len, int by_name);
/* Removes the monitor with that ref from that watcher; 1 if one existed. */
int sbx_proc_demonitor(struct sbx_proc *p, const struct sbx_rpid *watcher, const char *ref,
                       size_t ref_len);

/* Drops p's links and monitors held through connection conn_id; returns how many. */
size_t sbx_proc_drop_conn(struct sbx_proc *p, uint64_t conn_id);

/* Calls fn(p, arg) for each process; fn may free p (and only p). */
void sbx_proc_each(struct sbx_proc_table *t, void (*fn)(struct sbx_proc *p, void *arg), void *arg);

static inline int sbx_rpid_eq(const struct sbx_rpid *a, const struct sbx_rpid *b) {
    return a->conn_id == b->conn_id && a->num == b->num && a->serial == b->serial &&
           a->creation == b->creation;
}

#endif
