/* Control messages after the handshake: links, monitors, sends, exits, spawn requests.
 * Table of opcodes at the top of control.c. */
#ifndef SBX_DIST_CONTROL_H
#define SBX_DIST_CONTROL_H

#include <ei.h>
#include <stddef.h>
#include <stdint.h>

#include "dist/frame.h"
#include "dist/proc.h"

struct sbx_node;
struct sbx_conn;

/* A SPAWN_REQUEST addressed to this node. Pointers are into the packet and live only
 * during the handler call. */
struct sbx_spawn_request {
    uint64_t conn_id;
    const char *req_id; /* the request reference, encoded, no version byte */
    size_t req_id_len;
    struct sbx_rpid from;
    char module[MAXATOMLEN_UTF8];
    char function[MAXATOMLEN_UTF8];
    long arity;
    int link;
    int monitor;
    const char *args; /* the argument list, encoded, no version byte */
    size_t args_len;
};

/* Installed by the rpc layer: runs every spawn request. */
typedef void (*sbx_spawn_handler)(struct sbx_node *node, const struct sbx_spawn_request *req);
void sbx_control_set_spawn_handler(sbx_spawn_handler h);

/* Sends SPAWN_REPLY {31, ReqId, From, Flags, Pid} for req: with p, p's pid and flags (1
 * link, 2 monitor); without, flags 0 and the atom reason (the requester's spawn fails with
 * it at once). Nothing is sent if the requester's node is not connected. */
void sbx_control_spawn_reply(struct sbx_node *node, const struct sbx_spawn_request *req,
                             int flags, const struct sbx_proc *p, const char *reason);

/* Handles one packet from connection c (up). Returns 0, or -1 when the control message
 * is malformed (the caller then drops the connection). Never frees c. */
int sbx_control_dispatch(struct sbx_node *node, struct sbx_conn *c,
                         const struct sbx_dist_packet *pkt);

/* Helpers shared with the rpc layer (validated buffers only). */
int sbx_decode_atom(const char *buf, int *index, char out[MAXATOMLEN_UTF8]);
/* 1 if two encoded references (no version byte) name the same reference, whatever
 * encoding each node chose. */
int sbx_ref_equal(const char *a, size_t alen, const char *b, size_t blen);

/* Skips one term, reporting where it starts and how long it is. */
int sbx_term_span(const char *buf, int *index, const char **start, size_t *len);

#endif
