/* The docker backend: containers through the Docker Engine API (net/http.c on the
 * daemon's loop). This file is the ops table and the small ops; the engine connection
 * is in engine.c, the container's life in container.c, exec in exec.c, metrics and
 * processes in stats.c, copies in archive.c. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/docker_config.h"
#include "backends/backend.h"
#include "backends/docker/dk.h"
#include "backends/docker/docker.h"
#include "core/core.h"
#include "core/logbuf.h"
#include "core/sandbox.h"
#include "dist/node.h"

/* Backend available: the cached engine state (see engine.c). */
static int dk_available(struct sbx_core *core, const char **why) {
    return sbx_docker_available(core, why);
}

/* Backend alive: a container running (or being made) as far as we know. */
static int dk_alive(struct sbx_sandbox *sb) {
    struct dk_state *ds = sb->bstate;
    return ds != NULL && ds->phase != DK_IDLE;
}

/* Frees ds after cancelling its requests; execs answered (answer) or dropped. */
static void state_free(struct sbx_sandbox *sb, int answer) {
    struct dk_state *ds = sb->bstate;
    struct dk_engine *e = dk_engine_peek();
    if (ds == NULL)
        return;
    if (e != NULL)
        dk_cancel_all(e, ds);
    /* Freed while destroying with its container still there (the daemon stops with the
     * destroy policy): the container goes without us. */
    if (answer && sb->destroying && ds->cid[0] != '\0')
        dk_remove_orphan(e, ds->cid);
    ds->logs_op = ds->wait_op = ds->stats_op = ds->inspect_op = ds->step = NULL;
    sb->bstate = NULL;
    dk_exec_release(ds, answer);
    dk_query_release(ds);
    dk_container_free(ds);
    free(ds);
}

/* Backend release: every request of the sandbox is cancelled, pending execs answered
 * with an error, the state freed. A container still there (engine down) is an orphan
 * that the next reconcile removes. The cookie remote calls registered for the
 * container's BEAM node (rpc/remote.h) is forgotten. */
static void dk_release(struct sbx_sandbox *sb) {
    state_free(sb, 1);
    if (sb->cfg.has_beam && sb->cfg.node_name != NULL && sb->core != NULL && sb->core->node != NULL)
        sbx_node_forget_peer_cookie(sb->core->node, sb->cfg.node_name);
}

/* Backend detach: the state is freed, the container left running for adoption. */
static void dk_detach(struct sbx_sandbox *sb) { state_free(sb, 0); }

/* Backend exec_cancel: an exec or a query (metrics, processes, copy) whose caller left. */
static void dk_exec_cancel_op(struct sbx_sandbox *sb, uint64_t key) {
    struct dk_state *ds = sb->bstate;
    if (ds == NULL)
        return;
    if (!dk_exec_cancel(ds, key))
        dk_query_cancel(ds, key);
}

/* Backend shell: docker exec -it <container> /bin/sh. */
static int dk_shell(struct sbx_sandbox *sb, ei_x_buff *x, struct sbx_err *err) {
    struct dk_state *ds = sb->bstate;
    if (ds == NULL || ds->cid[0] == '\0') {
        err->reason_atom = "not_running";
        return -1;
    }
    const char *argv[] = {"docker", "exec", "-it", ds->cid, "/bin/sh"};
    ei_x_encode_map_header(x, 2);
    ei_x_encode_atom(x, "kind");
    ei_x_encode_atom(x, "exec");
    ei_x_encode_atom(x, "argv");
    ei_x_encode_list_header(x, 5);
    for (int i = 0; i < 5; i++)
        ei_x_encode_binary(x, argv[i], (int)strlen(argv[i]));
    ei_x_encode_empty_list(x);
    return 0;
}

/* Backend beam_target: the container's BEAM node, when the config has `beam` and the
 * container is running (else -1: "the node is not running"). */
static int dk_beam_target(struct sbx_sandbox *sb, struct sbx_beam_target *t) {
    const struct dk_state *ds = sb->bstate;
    if (!sb->cfg.has_beam || sb->cfg.node_name == NULL || ds == NULL ||
        ds->phase != DK_RUNNING || ds->end_pending || ds->cid[0] == '\0')
        return -1;
    snprintf(t->node, sizeof t->node, "%s", sb->cfg.node_name);
    snprintf(t->cookie, sizeof t->cookie, "%s", sb->cfg.cookie != NULL ? sb->cfg.cookie : "");
    return 0;
}

/* Journal part: {docker, ContainerId} (an empty binary before the container exists). */
static void dk_journal(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct dk_state *ds = sb->bstate;
    const char *cid = ds != NULL ? ds->cid : "";
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "docker");
    ei_x_encode_binary(x, cid, (int)strlen(cid));
}

/* sbx_logbuf_query callback: keeps the record's time (ms) in *arg, plus one ms so that
 * the record itself is not fetched again. */
static void last_record(void *arg, int64_t ts, enum sbx_stream stream, const char *data,
                        size_t len) {
    (void)stream;
    (void)data;
    (void)len;
    *(int64_t *)arg = ts + 1;
}

/* Backend adopt: re-attaches to the journalled container id, tentatively running; the
 * reconcile that follows the engine's first answer says what it really is. */
static int dk_adopt(struct sbx_sandbox *sb, const char *buf, int idx) {
    int arity, type, size;
    char atom[MAXATOMLEN];
    char cid[DK_CID_MAX];
    long blen = 0;
    cid[0] = '\0';
    if (ei_decode_tuple_header(buf, &idx, &arity) != 0 || arity != 2 ||
        ei_decode_atom(buf, &idx, atom) != 0 || strcmp(atom, "docker") != 0 ||
        ei_get_type(buf, &idx, &type, &size) != 0 || type != ERL_BINARY_EXT ||
        size >= DK_CID_MAX || ei_decode_binary(buf, &idx, cid, &blen) != 0)
        blen = 0;
    cid[blen] = '\0';
    for (long i = 0; i < blen; i++)
        if (!((cid[i] >= '0' && cid[i] <= '9') || (cid[i] >= 'a' && cid[i] <= 'f')))
            cid[0] = '\0';
    struct dk_state *ds = calloc(1, sizeof *ds);
    if (ds == NULL)
        return 0;
    ds->sb = sb;
    sbx_demux_init(&ds->logs_demux, 0);
    snprintf(ds->cid, sizeof ds->cid, "%s", cid);
    ds->phase = DK_RUNNING;
    /* Logs follow on from the last record kept, not from the container's start. */
    sbx_logbuf_query(sb->logs, 1, 0, last_record, &ds->logs_since_ms);
    ds->logs_last_ms = ds->logs_since_ms;
    sb->bstate = ds;
    (void)dk_engine(sb->core);
    return 1;
}

/* Backend ref: the container id, or undefined. */
static void dk_ref(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct dk_state *ds = sb->bstate;
    if (ds != NULL && ds->cid[0] != '\0')
        ei_x_encode_binary(x, ds->cid, (int)strlen(ds->cid));
    else
        ei_x_encode_atom(x, "undefined");
}

/* Backend ports: as the engine published them at the last start or inspect. */
static void dk_ports(const struct sbx_sandbox *sb, ei_x_buff *x) {
    const struct dk_state *ds = sb->bstate;
    dk_ports_encode(ds != NULL ? ds->ports : NULL, ds != NULL ? ds->nports : 0, x);
}

/* Backend probe_addr: the container's address and the container port that the
 * config's port publishes (or that port itself inside the container). */
static int dk_probe_addr(const struct sbx_sandbox *sb, int port, struct sockaddr_in *sa) {
    const struct dk_state *ds = sb->bstate;
    int cport = port;
    struct in_addr ip;
    if (ds == NULL || ds->ip[0] == '\0' || inet_pton(AF_INET, ds->ip, &ip) != 1)
        return -1;
    sa->sin_addr = ip;
    for (int i = 0; i < ds->nports; i++)
        if (ds->ports[i].host == port && strcmp(ds->ports[i].proto, "tcp") == 0)
            cport = ds->ports[i].container;
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)cport);
    return 0;
}

const struct sbx_backend sbx_backend_docker = {
    .config = &sbx_docker_config_schema,
    .name = "docker",
    .type = SBX_TYPE_DOCKER,
    .available = dk_available,
    .start = dk_start,
    .stop = dk_stop,
    .alive = dk_alive,
    .release = dk_release,
    .detach = dk_detach,
    .exec = dk_exec,
    .exec_cancel = dk_exec_cancel_op,
    .metrics_async = dk_metrics_async,
    .processes_async = dk_processes_async,
    .copy_to = dk_copy_to,
    .copy_from = dk_copy_from,
    .remove = dk_remove,
    .beam_target = dk_beam_target,
    .shell = dk_shell,
    .adopt = dk_adopt,
    .journal = dk_journal,
    .ref = dk_ref,
    .ports = dk_ports,
    .probe_addr = dk_probe_addr,
    .pause = dk_pause,
    .resume = dk_resume,
};
