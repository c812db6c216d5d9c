/* Node-level functions: ping, info, erlang:node/0, and net_ping (this node dialling
 * another, the way net_adm:ping does). */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "api/api.h"
#include "backends/backend.h"
#include "dist/conn.h"
#include "dist/control.h"
#include "backends/vm/vm_info.h"
#include "core/core.h"
#include "dist/node.h"
#include "backends/process/fdhold.h"
#include "util/fdlimit.h"
#include "util/clock.h"
#include "util/rss.h"

/* See api.h. Answers pong. */
enum sbx_api_status sbx_api_ping(struct sbx_call *call) {
    ei_x_encode_atom(&call->result, "pong");
    return SBX_API_DONE;
}

/* See api.h. This node's name, as erlang:node/0 gives it. */
enum sbx_api_status sbx_api_erlang_node(struct sbx_call *call) {
    ei_x_encode_atom(&call->result, call->node->name);
    return SBX_API_DONE;
}

/* Appends {unavailable, WhyBinary}. */
static void encode_unavailable(ei_x_buff *x, const char *why) {
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "unavailable");
    ei_x_encode_binary(x, why, (int)strlen(why));
}

/* Appends isolation => #{user, uid_range, capabilities, no_new_privs, separate}: what
 * keeps a process or beam_node workload away from sandboxd (docs/API.md). user: dynamic
 * (a uid per sandbox) or shared (sandboxd's own uid); capabilities: dropped, or kept (a
 * root sandboxd with --uid-range off runs workloads as root); separate: whether a
 * default workload is kept from sandboxd's files, environment and processes. */
static void encode_isolation(ei_x_buff *x, const struct sbx_core *core) {
    int dynamic = core != NULL && core->uids.enabled;
    int root = geteuid() == 0;
    ei_x_encode_atom(x, "isolation");
    ei_x_encode_map_header(x, 5);
    ei_x_encode_atom(x, "user");
    ei_x_encode_atom(x, dynamic ? "dynamic" : "shared");
    ei_x_encode_atom(x, "uid_range");
    if (dynamic) {
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_ulong(x, core->uids.first);
        ei_x_encode_ulong(x, core->uids.last);
    } else {
        ei_x_encode_atom(x, "none");
    }
    ei_x_encode_atom(x, "capabilities");
    ei_x_encode_atom(x, root && !dynamic ? "kept" : "dropped");
    ei_x_encode_atom(x, "no_new_privs");
    ei_x_encode_atom(x, "true");
    ei_x_encode_atom(x, "separate");
    ei_x_encode_atom(x, dynamic ? "true" : "false");
}

/* Descriptors kept free for connections, requests and the loop itself. */
#define FDS_RESERVE 256

/* Appends open_files => #{limit, in_use, holders_in_use, sandboxes_allowed}: sandboxd's
 * soft limit, the descriptors it has open now, those its descriptor holders keep for it
 * (backends/process/fdhold.h: two per process sandbox, in their own tables), and how many
 * sandboxes fit: an idle process sandbox holds none of sandboxd's own, so the room is
 * what sandboxd's table has left beyond the reserve at what sandboxes hold of it beyond
 * what it held at start (at least 1 each, so the figure never runs away), and no more
 * than the holders can still take; capped at the core's max_sandboxes. */
static void encode_open_files(ei_x_buff *x, const struct sbx_core *core) {
    long limit = sbx_fdlimit_current(), used = sbx_fdlimit_in_use();
    long count = core != NULL ? (long)core->count : 0;
    long per = 1, allowed = count;
    long holders = sbx_fdhold_fds();
    if (core != NULL && count > 0 && used > core->fds_at_start)
        per = (used - core->fds_at_start + count - 1) / count;
    if (per < 1)
        per = 1;
    if (limit > 0 && used >= 0 && limit - used > FDS_RESERVE) {
        long room = (limit - used - FDS_RESERVE) / per, hold = sbx_fdhold_room();
        allowed = count + (room < hold ? room : hold);
    }
    if (core != NULL && allowed > (long)core->max_sandboxes)
        allowed = (long)core->max_sandboxes;
    ei_x_encode_atom(x, "open_files");
    ei_x_encode_map_header(x, 4);
    ei_x_encode_atom(x, "limit");
    ei_x_encode_long(x, limit);
    ei_x_encode_atom(x, "in_use");
    ei_x_encode_long(x, used);
    ei_x_encode_atom(x, "holders_in_use");
    ei_x_encode_long(x, holders);
    ei_x_encode_atom(x, "sandboxes_allowed");
    ei_x_encode_long(x, allowed);
}

/* load => {L1, L5, L15}: the host's load averages (what a cluster client weighs when it
 * places a sandbox), zeros when the kernel does not tell them. */
static void encode_load(ei_x_buff *x) {
    double l[3] = {0, 0, 0};
    if (getloadavg(l, 3) != 3)
        l[0] = l[1] = l[2] = 0;
    ei_x_encode_atom(x, "load");
    ei_x_encode_tuple_header(x, 3);
    for (int i = 0; i < 3; i++)
        ei_x_encode_double(x, l[i]);
}

/* See api.h. Works without a core too (counts 0, every backend unavailable). */
enum sbx_api_status sbx_api_info(struct sbx_call *call) {
    struct sbx_node *node = call->node;
    ei_x_buff *x = &call->result;
    static const char *const backends[] = {"process", "docker", "beam_node", "vm"};

    struct sbx_core *core = sbx_core_get();
    /* 15 keys: node version uptime_ms memory_bytes sandboxes subscribers limits isolation
     * open_files connections processes handshakes load backends vm_accel (count again
     * when adding one). */
    ei_x_encode_map_header(x, 15);
    ei_x_encode_atom(x, "node");
    ei_x_encode_atom(x, node->name);
    ei_x_encode_atom(x, "version");
    ei_x_encode_binary(x, SBX_VERSION, (int)strlen(SBX_VERSION));
    ei_x_encode_atom(x, "uptime_ms");
    ei_x_encode_longlong(x, sbx_mono_ms() - node->started_mono_ms);
    ei_x_encode_atom(x, "memory_bytes");
    ei_x_encode_longlong(x, sbx_rss_bytes());
    ei_x_encode_atom(x, "sandboxes");
    ei_x_encode_long(x, core != NULL ? (long)core->count : 0);
    ei_x_encode_atom(x, "subscribers");
    ei_x_encode_long(x, core != NULL ? (long)core->sub_count : 0);
    /* Which limits this host enforces for process sandboxes, and how. */
    ei_x_encode_atom(x, "limits");
    ei_x_encode_map_header(x, 3);
    ei_x_encode_atom(x, "memory_mb");
    ei_x_encode_atom(x, core != NULL && core->cg.can_memory ? "cgroup" : "rlimit");
    ei_x_encode_atom(x, "cpus");
    ei_x_encode_atom(x, core != NULL && core->cg.can_cpu ? "cgroup" : "none");
    ei_x_encode_atom(x, "pids_limit");
    ei_x_encode_atom(x, core != NULL && core->cg.can_pids ? "cgroup" : "none");
    encode_isolation(x, core);
    encode_open_files(x, core);
    encode_load(x);
    ei_x_encode_atom(x, "connections");
    ei_x_encode_long(x, (long)sbx_node_conn_count(node));
    ei_x_encode_atom(x, "processes");
    ei_x_encode_long(x, (long)sbx_node_proc_count(node));
    /* Accepted connections whose peer has not proven the cookie (strangers). */
    ei_x_encode_atom(x, "handshakes");
    ei_x_encode_map_header(x, 5);
    ei_x_encode_atom(x, "pending");
    ei_x_encode_long(x, (long)node->strangers.total);
    ei_x_encode_atom(x, "max");
    ei_x_encode_long(x, (long)node->strangers.max_total);
    ei_x_encode_atom(x, "max_per_addr");
    ei_x_encode_long(x, (long)node->strangers.max_per_addr);
    ei_x_encode_atom(x, "refused");
    ei_x_encode_ulonglong(x, (unsigned long long)node->stats_strangers_refused);
    ei_x_encode_atom(x, "evicted");
    ei_x_encode_ulonglong(x, (unsigned long long)node->stats_strangers_evicted);
    ei_x_encode_atom(x, "backends");
    ei_x_encode_map_header(x, 4);
    for (size_t i = 0; i < 4; i++) {
        const struct sbx_backend *be = sbx_backend_for((enum sbx_type)i);
        const char *why = "not built";
        ei_x_encode_atom(x, backends[i]);
        if (core != NULL && be != NULL && be->available(core, &why))
            ei_x_encode_atom(x, "available");
        else
            encode_unavailable(x, why);
    }
    /* The accel a vm with accel => auto gets here: kvm, tcg, or probing. */
    ei_x_encode_atom(x, "vm_accel");
    ei_x_encode_atom(x, sbx_vm_accel_info(core));
    return SBX_API_DONE;
}

/* net_ping(Node): connect with our own initiating handshake, then ask the peer's
 * net_kernel {is_auth, Us} exactly as net_adm:ping does. pong or pang. */

#define NET_PING_TIMEOUT_MS 8000

struct net_ping {
    struct event *timer;
    char *ref; /* the call reference we wait for, encoded */
    size_t ref_len;
};

/* Frees the ping state with its timer and reference; the call is not touched. */
static void net_ping_free(struct net_ping *np) {
    if (np->timer != NULL)
        event_free(np->timer);
    free(np->ref);
    free(np);
}

/* Answers pong or pang and ends the call; call is invalid on return. */
static void net_ping_answer(struct sbx_call *call, const char *answer) {
    net_ping_free(call->state);
    call->state = NULL;
    ei_x_encode_atom(&call->result, answer);
    sbx_call_done(call);
}

/* Call cancel: frees the ping state. A connect still under way
 * later finds no call and does nothing. */
static void net_ping_cancel(struct sbx_call *call) {
    net_ping_free(call->state);
    call->state = NULL;
}

/* No answer within NET_PING_TIMEOUT_MS: pang. arg is the call itself, which
 * is safe because the timer is freed with the state when the call ends. */
static void net_ping_timeout(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    net_ping_answer(arg, "pang");
}

/* {Ref, yes} answers the ping; anything else is ignored. */
static void net_ping_message(struct sbx_call *call, const char *msg, size_t len) {
    struct net_ping *np = call->state;
    int idx = 0, version, arity;
    const char *ref;
    size_t ref_len;
    char atom[MAXATOMLEN_UTF8];
    (void)len;
    if (np == NULL || ei_decode_version(msg, &idx, &version) != 0 ||
        ei_decode_tuple_header(msg, &idx, &arity) != 0 || arity != 2 ||
        sbx_term_span(msg, &idx, &ref, &ref_len) != 0 || ref_len != np->ref_len ||
        memcmp(ref, np->ref, ref_len) != 0 || sbx_decode_atom(msg, &idx, atom) != 0)
        return;
    net_ping_answer(call, strcmp(atom, "yes") == 0 ? "pong" : "pang");
}

/* Connect callback, with the call looked up by key (it may be gone): sends {is_auth, Us} to
 * the peer's net_kernel. A failed connect, or a request that cannot be sent, answers pang. */
static void net_ping_connected(struct sbx_node *node, uint64_t conn_id, const char *why,
                               uint64_t key) {
    struct sbx_call *call = sbx_call_from_key(node, key);
    (void)why;
    if (call == NULL || call->state == NULL)
        return; /* the caller left meanwhile */
    if (conn_id == 0) {
        net_ping_answer(call, "pang");
        return;
    }
    struct net_ping *np = call->state;
    ei_x_buff ctl, msg, ref;
    ei_x_new_with_version(&ctl);
    ei_x_new_with_version(&msg);
    ei_x_new(&ref);
    sbx_node_make_ref(node, &ref);
    np->ref = malloc((size_t)ref.index);
    if (np->ref != NULL) {
        memcpy(np->ref, ref.buff, (size_t)ref.index);
        np->ref_len = (size_t)ref.index;
        /* {6, From, '', net_kernel} + {'$gen_call', {From, Ref}, {is_auth, Us}} */
        ei_x_encode_tuple_header(&ctl, 4);
        ei_x_encode_long(&ctl, 6);
        sbx_node_encode_self_pid(node, &ctl, call->proc);
        ei_x_encode_atom(&ctl, "");
        ei_x_encode_atom(&ctl, "net_kernel");
        ei_x_encode_tuple_header(&msg, 3);
        ei_x_encode_atom(&msg, "$gen_call");
        ei_x_encode_tuple_header(&msg, 2);
        sbx_node_encode_self_pid(node, &msg, call->proc);
        ei_x_append(&msg, &ref);
        ei_x_encode_tuple_header(&msg, 2);
        ei_x_encode_atom(&msg, "is_auth");
        ei_x_encode_atom(&msg, node->name);
    }
    int sent = np->ref != NULL && sbx_node_send(node, conn_id, &ctl, &msg) == 0;
    ei_x_free(&ctl);
    ei_x_free(&msg);
    ei_x_free(&ref);
    if (!sent)
        net_ping_answer(call, "pang");
}

/* See api.h. Pending until the peer answers, the connection
 * fails or the timeout passes; a caller that leaves cancels it. */
enum sbx_api_status sbx_api_net_ping(struct sbx_call *call) {
    char peer[MAXATOMLEN_UTF8];
    int idx = call->argv[0];
    struct net_ping *np;

    if (sbx_decode_atom(call->args.buff, &idx, peer) != 0 ||
        !sbx_node_name_valid(peer, strlen(peer))) {
        ei_x_encode_tuple_header(&call->result, 2);
        ei_x_encode_atom(&call->result, "error");
        ei_x_encode_tuple_header(&call->result, 3);
        ei_x_encode_atom(&call->result, "badarg");
        ei_x_encode_atom(&call->result, "node");
        ei_x_encode_atom(&call->result, "not_a_node_name");
        return SBX_API_DONE;
    }
    if (strcmp(peer, call->node->name) == 0) {
        ei_x_encode_atom(&call->result, "pong");
        return SBX_API_DONE;
    }
    np = calloc(1, sizeof *np);
    if (np == NULL)
        goto pang;
    np->timer = evtimer_new(call->node->base, net_ping_timeout, call);
    struct timeval tv = {NET_PING_TIMEOUT_MS / 1000, 0};
    if (np->timer == NULL || evtimer_add(np->timer, &tv) != 0) {
        net_ping_free(np);
        goto pang;
    }
    call->state = np;
    call->cancel = net_ping_cancel;
    call->on_message = net_ping_message;
    if (sbx_conn_connect(call->node, peer, net_ping_connected, sbx_call_key(call)) != 0) {
        net_ping_free(np);
        call->state = NULL;
        goto pang;
    }
    return SBX_API_PENDING;
pang:
    ei_x_encode_atom(&call->result, "pang");
    return SBX_API_DONE;
}
