/* The agent connection's request table, shared by vm_agent.c (the connection: bytes,
 * frames, HELLO) and vm_ops.c (what each request does with its answers). */
#ifndef SBX_BACKENDS_VM_VM_AGENT_H
#define SBX_BACKENDS_VM_VM_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "backends/vm/vm.h"
#include "vmproto/agent_proto.h"

struct vm_req;

struct vm_req_ops {
    /* A frame for this request. Returns 1 when the request is finished (the table then
     * frees it), 0 while more is due. */
    int (*frame)(struct vm_req *r, const struct agent_frame *f);
    /* The connection is gone or the request is abandoned: answer with why when answer,
     * never touching the connection. */
    void (*fail)(struct vm_req *r, const char *why, int answer);
    /* Frees what the request owns (not r itself). */
    void (*free)(struct vm_req *r);
};

struct vm_req {
    struct vm_req *next;
    struct vm_agent *a;
    const struct vm_req_ops *ops;
    uint32_t id;
    uint64_t key;
    int is_main;
    void *data;   /* the request kind's own */
};

/* Adds r (id given here, except for the main workload: 0) to a's table. */
void vm_agent_add(struct vm_agent *a, struct vm_req *r);
/* Removes r from the table and frees it (ops->free, then r). */
void vm_agent_drop(struct vm_agent *a, struct vm_req *r);
/* The request with key (not the main workload), or NULL. */
struct vm_req *vm_agent_find_key(struct vm_agent *a, uint64_t key);
/* Queues a frame for the guest. 0, or -1 (connection gone, or no memory). */
int vm_agent_send(struct vm_agent *a, const void *frame, size_t len);
/* 1 once the agent answered HELLO on this connection. */
int vm_agent_ready(const struct vm_agent *a);
/* The sandbox the connection belongs to. */
struct vm_state *vm_agent_vm(const struct vm_agent *a);
/* Bytes queued for the guest and not yet written. */
size_t vm_agent_backlog(const struct vm_agent *a);

#endif
