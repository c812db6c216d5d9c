/* The docker type's config keys: image (required), ports, volumes, network, pull, and
 * beam => #{name, cookie} for a container that runs a BEAM node. */
#include "backends/docker/docker_config.h"

#include <ei.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/term_decode.h"

enum { K_IMAGE, K_PORTS, K_VOLUMES, K_NETWORK, K_PULL, K_BEAM, K_COUNT };

static const char *const KEYS[K_COUNT] = {
    [K_IMAGE] = "image", [K_PORTS] = "ports", [K_VOLUMES] = "volumes",
    [K_NETWORK] = "network", [K_PULL] = "pull", [K_BEAM] = "beam",
};
static const char *const PULL_NAMES[] = {"if_missing", "never", "always"}; /* enum sbx_pull */

/* A port number at *idx: an integer in lo..65535. */
static int get_port_num(const char *buf, int *idx, int lo, int *out, struct sbx_badarg *err) {
    long long v;
    if (sbx_td_int(buf, idx, "ports", lo, 65535, &v, err) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

enum { P_HOST, P_CONTAINER, P_PROTOCOL, P_COUNT };
static const struct sbx_td_key PORT_KEYS[P_COUNT] = {
    [P_HOST] = {"host", 1}, [P_CONTAINER] = {"container", 1}, [P_PROTOCOL] = {"protocol", 1},
};
static const char *const PROTO_NAMES[] = {"tcp", "udp"};

/* One port: {HostPort, ContainerPort} or #{host, container, protocol}. Owns nothing. */
static int get_port(const char *buf, int *idx, struct sbx_port *out, struct sbx_badarg *err) {
    int i = *idx, arity = 0, proto = 0;
    memset(out, 0, sizeof *out);
    if (sbx_td_tag(buf, i) == ERL_SMALL_TUPLE_EXT) {
        if (ei_decode_tuple_header(buf, &i, &arity) != 0 || arity != 2) {
            sbx_td_fail(err, "ports", SBX_WHY_UNKNOWN_VALUE);
            return -1;
        }
        if (get_port_num(buf, &i, 0, &out->host, err) != 0 ||
            get_port_num(buf, &i, 1, &out->container, err) != 0)
            return -1;
    } else if (sbx_td_tag(buf, i) == ERL_MAP_EXT) {
        struct sbx_td_pos pos[P_COUNT];
        int end = i, j;
        if (sbx_td_scan_map(buf, &end, "ports", PORT_KEYS, P_COUNT, 1, pos, err) != 0)
            return -1;
        if (pos[P_CONTAINER].val < 0) {
            sbx_td_fail(err, "ports", SBX_WHY_MISSING);
            return -1;
        }
        j = pos[P_CONTAINER].val;
        if (get_port_num(buf, &j, 1, &out->container, err) != 0)
            return -1;
        j = pos[P_HOST].val;
        if (j >= 0 && get_port_num(buf, &j, 0, &out->host, err) != 0)
            return -1;
        j = pos[P_PROTOCOL].val;
        if (j >= 0 && sbx_td_enum(buf, &j, "ports", PROTO_NAMES, 2, &proto, err) != 0)
            return -1;
        i = end;
    } else {
        sbx_td_fail(err, "ports", SBX_WHY_UNKNOWN_VALUE);
        return -1;
    }
    snprintf(out->proto, sizeof out->proto, "%s", PROTO_NAMES[proto]);
    *idx = i;
    return 0;
}

/* Docker ports: a proper list of at most 64 ports into c->ports. */
static int get_ports(const char *buf, int *idx, struct sbx_config *c, struct sbx_badarg *err) {
    int i = *idx, arity = 0;
    if (sbx_td_list_open(buf, &i, &arity) != 0) {
        sbx_td_fail(err, "ports", SBX_WHY_NOT_A_LIST);
        return -1;
    }
    if (arity > 64) {
        sbx_td_fail(err, "ports", SBX_WHY_TOO_MANY);
        return -1;
    }
    c->ports = calloc((size_t)arity + 1, sizeof *c->ports);
    if (c->ports == NULL) {
        sbx_td_fail(err, "ports", SBX_WHY_NO_MEMORY);
        return -1;
    }
    for (int k = 0; k < arity; k++) {
        if (get_port(buf, &i, &c->ports[k], err) != 0)
            return -1;
        c->nports++;
    }
    if (sbx_td_list_close(buf, &i, arity) != 0) {
        sbx_td_fail(err, "ports", SBX_WHY_NOT_A_LIST);
        return -1;
    }
    *idx = i;
    return 0;
}

/* "host:container[:ro]" from a host path and a container path (both absolute). */
static char *make_bind(const char *host, const char *ctr, const char *mode,
                       struct sbx_badarg *err) {
    if (host[0] != '/' || ctr[0] != '/' || strchr(host, ':') != NULL || strchr(ctr, ':') != NULL) {
        sbx_td_fail(err, "volumes", SBX_WHY_NOT_ABSOLUTE);
        return NULL;
    }
    size_t n = strlen(host) + strlen(ctr) + strlen(mode) + 3;
    char *b = malloc(n);
    if (b == NULL) {
        sbx_td_fail(err, "volumes", SBX_WHY_NO_MEMORY);
        return NULL;
    }
    snprintf(b, n, "%s:%s%s%s", host, ctr, mode[0] ? ":" : "", mode);
    return b;
}

/* Docker volumes: a list of "host:container[:ro]" strings or {Host, Container} tuples,
 * or a map Host => Container, into c->volumes (at most 64). */
static int get_volumes(const char *buf, int *idx, struct sbx_config *c, struct sbx_badarg *err) {
    int i = *idx, arity = 0, is_map = sbx_td_tag(buf, i) == ERL_MAP_EXT;
    if (is_map ? ei_decode_map_header(buf, &i, &arity) != 0
               : sbx_td_list_open(buf, &i, &arity) != 0) {
        sbx_td_fail(err, "volumes", SBX_WHY_NOT_A_LIST);
        return -1;
    }
    if (arity > 64) {
        sbx_td_fail(err, "volumes", SBX_WHY_TOO_MANY);
        return -1;
    }
    c->volumes.v = calloc((size_t)arity + 1, sizeof *c->volumes.v);
    if (c->volumes.v == NULL) {
        sbx_td_fail(err, "volumes", SBX_WHY_NO_MEMORY);
        return -1;
    }
    for (int k = 0; k < arity; k++) {
        char *a = NULL, *b = NULL, *bind = NULL;
        int t = 0;
        if (!is_map && sbx_td_tag(buf, i) != ERL_SMALL_TUPLE_EXT) {
            if (sbx_td_nonempty(buf, &i, "volumes", 0, SBX_TD_PATH_MAX * 2, &a, err) != 0)
                return -1;
            char *colon = strchr(a, ':');
            if (a[0] != '/' || colon == NULL || colon[1] != '/') {
                free(a);
                sbx_td_fail(err, "volumes", SBX_WHY_NOT_ABSOLUTE);
                return -1;
            }
            c->volumes.v[c->volumes.n++] = a;
            continue;
        }
        if (!is_map && (ei_decode_tuple_header(buf, &i, &t) != 0 || t != 2)) {
            sbx_td_fail(err, "volumes", SBX_WHY_UNKNOWN_VALUE);
            return -1;
        }
        if (sbx_td_nonempty(buf, &i, "volumes", 0, SBX_TD_PATH_MAX, &a, err) == 0 &&
            sbx_td_nonempty(buf, &i, "volumes", 0, SBX_TD_PATH_MAX, &b, err) == 0)
            bind = make_bind(a, b, "", err);
        free(a);
        free(b);
        if (bind == NULL)
            return -1;
        c->volumes.v[c->volumes.n++] = bind;
    }
    if (!is_map && sbx_td_list_close(buf, &i, arity) != 0) {
        sbx_td_fail(err, "volumes", SBX_WHY_NOT_A_LIST);
        return -1;
    }
    *idx = i;
    return 0;
}

enum { B_NAME, B_COOKIE, B_COUNT };
static const struct sbx_td_key BEAM_KEYS[B_COUNT] = {[B_NAME] = {"name", 1},
                                                     [B_COOKIE] = {"cookie", 1}};

/* docker's beam => #{name => Node, cookie => Cookie}: both required. */
static int get_docker_beam(const char *buf, int *idx, struct sbx_config *c,
                           struct sbx_badarg *err) {
    struct sbx_td_pos pos[B_COUNT];
    int end = *idx, j;
    if (sbx_td_scan_map(buf, &end, "beam", BEAM_KEYS, B_COUNT, 1, pos, err) != 0)
        return -1;
    if (pos[B_NAME].val < 0 || pos[B_COOKIE].val < 0) {
        sbx_td_fail(err, pos[B_NAME].val < 0 ? "name" : "cookie", SBX_WHY_MISSING);
        return -1;
    }
    j = pos[B_NAME].val;
    if (sbx_td_nonempty(buf, &j, "name", SBX_TD_ATOM, SBX_TD_NAME_MAX, &c->node_name, err) != 0)
        return -1;
    if (strchr(c->node_name, '@') == NULL) {
        sbx_td_fail(err, "name", SBX_WHY_INVALID_CHARACTERS);
        return -1;
    }
    j = pos[B_COOKIE].val;
    if (sbx_td_nonempty(buf, &j, "cookie", SBX_TD_ATOM, SBX_TD_NAME_MAX, &c->cookie, err) != 0)
        return -1;
    c->has_beam = 1;
    *idx = end;
    return 0;
}


/* Decodes the value of KEYS[k] into c (see struct sbx_config_schema). */
static int decode(size_t k, const char *buf, int *idx, struct sbx_config *c,
                  struct sbx_badarg *err) {
    int e = 0;
    switch (k) {
    case K_IMAGE:
        return sbx_td_nonempty(buf, idx, KEYS[k], 0, SBX_TD_PATH_MAX, &c->image, err);
    case K_PORTS: return get_ports(buf, idx, c, err);
    case K_VOLUMES: return get_volumes(buf, idx, c, err);
    case K_NETWORK:
        return sbx_td_nonempty(buf, idx, KEYS[k], 0, SBX_TD_NAME_MAX, &c->network, err);
    case K_PULL:
        if (sbx_td_enum(buf, idx, KEYS[k], PULL_NAMES, 3, &e, err) != 0)
            return -1;
        c->pull = (enum sbx_pull)e;
        return 0;
    default: return get_docker_beam(buf, idx, c, err);
    }
}

/* A container needs an image: {image, missing} without one. Owns nothing. */
static int finish(struct sbx_config *c, struct sbx_badarg *err) {
    if (c->image != NULL)
        return 0;
    sbx_td_fail(err, "image", SBX_WHY_MISSING);
    return -1;
}

/* Frees what decode stored. */
static void docker_free(struct sbx_config *c) {
    free(c->image);
    free(c->ports);
    sbx_td_strv_free(&c->volumes);
    free(c->network);
    free(c->node_name);
    free(c->cookie);
    c->image = c->network = c->node_name = c->cookie = NULL;
    c->ports = NULL;
    c->nports = 0;
}

const struct sbx_config_schema sbx_docker_config_schema = {
    .keys = KEYS, .nkeys = K_COUNT, .decode = decode, .finish = finish, .free = docker_free,
};
