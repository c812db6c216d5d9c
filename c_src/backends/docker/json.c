/* Pure JSON work of the docker backend (jansson): the container create body, stats
 * samples to metrics as the docker CLI computes them, the top answer to the processes
 * list, image references. No I/O: unit-tested in test/c/test_docker.c. Every value read
 * from Docker is checked for its type; anything unexpected counts as absent. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/dk.h"
#include "core/config.h"
#include "util/psstate.h"

/* Adds "k=v" strings of kv to the array a. 0 or -1. */
static int add_env(json_t *a, const struct sbx_kvv *kv) {
    for (size_t i = 0; i < kv->n; i++) {
        char *s = NULL;
        if (asprintf(&s, "%s=%s", kv->v[i].key, kv->v[i].value) < 0)
            return -1;
        int rc = json_array_append_new(a, json_string(s));
        free(s);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* See dk.h. Every json_*_new steals its value, so one decref of the body frees all. */
json_t *dk_create_body(const struct dk_create_spec *s) {
    const struct sbx_config *c = s->cfg;
    json_t *b = json_object(), *hc = json_object(), *labels = json_object(), *env = json_array();
    json_t *binds = json_array(), *exposed = json_object(), *pb = json_object();
    char buf[1200];
    int bad = b == NULL || hc == NULL || labels == NULL || env == NULL || binds == NULL ||
              exposed == NULL || pb == NULL;
    if (bad)
        goto err;
    bad |= json_object_set_new(b, "Image", json_string(c->image ? c->image : ""));
    if (c->cmd.n > 0) {
        json_t *cmd = json_array();
        for (size_t i = 0; i < c->cmd.n; i++)
            bad |= json_array_append_new(cmd, json_string(c->cmd.v[i]));
        bad |= json_object_set_new(b, "Cmd", cmd);
    }
    snprintf(buf, sizeof buf, "SANDBOX_ID=%s", s->id);
    bad |= json_array_append_new(env, json_string(buf));
    bad |= add_env(env, &c->env);
    bad |= json_object_set_new(b, "Env", env);
    env = NULL;
    if (c->cwd != NULL) {
        if (c->cwd[0] == '/')
            snprintf(buf, sizeof buf, "%s", c->cwd);
        else
            snprintf(buf, sizeof buf, "/app/%s", c->cwd);
        bad |= json_object_set_new(b, "WorkingDir", json_string(buf));
    }
    for (size_t i = 0; i < c->labels.n; i++)
        bad |= json_object_set_new(labels, c->labels.v[i].key, json_string(c->labels.v[i].value));
    bad |= json_object_set_new(labels, "sandboxd.id", json_string(s->id));
    bad |= json_object_set_new(labels, "sandboxd.node", json_string(s->node));
    bad |= json_object_set_new(b, "Labels", labels);
    labels = NULL;
    for (size_t i = 0; i < c->nports; i++) {
        char key[32], host[16];
        snprintf(key, sizeof key, "%d/%s", c->ports[i].container,
                 c->ports[i].proto[0] ? c->ports[i].proto : "tcp");
        snprintf(host, sizeof host, "%d", c->ports[i].host);
        json_t *one = json_object();
        bad |= json_object_set_new(one, "HostIp", json_string(""));
        bad |= json_object_set_new(one, "HostPort", json_string(c->ports[i].host > 0 ? host : ""));
        json_t *list = json_object_get(pb, key);
        if (list == NULL) {
            list = json_array();
            bad |= json_object_set_new(pb, key, list);
        }
        bad |= json_array_append_new(list, one);
        bad |= json_object_set_new(exposed, key, json_object());
    }
    bad |= json_object_set_new(b, "ExposedPorts", exposed);
    exposed = NULL;
    bad |= json_object_set_new(hc, "PortBindings", pb);
    pb = NULL;
    snprintf(buf, sizeof buf, "%s:/app", s->workspace);
    bad |= json_array_append_new(binds, json_string(buf));
    for (size_t i = 0; i < c->volumes.n; i++)
        bad |= json_array_append_new(binds, json_string(c->volumes.v[i]));
    bad |= json_object_set_new(hc, "Binds", binds);
    binds = NULL;
    if (c->memory_mb > 0)
        bad |= json_object_set_new(hc, "Memory", json_integer((json_int_t)c->memory_mb * 1048576));
    if (c->cpus > 0)
        bad |= json_object_set_new(hc, "NanoCpus", json_integer((json_int_t)(c->cpus * 1e9)));
    if (c->pids_limit > 0)
        bad |= json_object_set_new(hc, "PidsLimit", json_integer(c->pids_limit));
    /* docker-init as pid 1: SIGTERM reaches the workload, zombies are reaped. */
    bad |= json_object_set_new(hc, "Init", json_true());
    if (c->network != NULL)
        bad |= json_object_set_new(hc, "NetworkMode", json_string(c->network));
    bad |= json_object_set_new(b, "HostConfig", hc);
    hc = NULL;
    if (bad)
        goto err;
    return b;
err:
    json_decref(b);
    json_decref(hc);
    json_decref(labels);
    json_decref(env);
    json_decref(binds);
    json_decref(exposed);
    json_decref(pb);
    return NULL;
}

/* An unsigned integer member, 0 when absent or not a non-negative integer. */
static uint64_t u64_of(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    return (uint64_t)json_integer_value(v);
}

/* See dk.h. cpu_percent = cpu_delta / system_delta * online_cpus * 100; memory = usage
 * minus the inactive file cache (cgroup v1 total_inactive_file, v2 inactive_file). */
int dk_stats_parse(const char *json, size_t len, struct dk_metrics *m) {
    json_t *j = json_loadb(json, len, 0, NULL);
    int rc = -1;
    if (!json_is_object(j) || json_object_get(j, "memory_stats") == NULL)
        goto done;
    json_t *cpu = json_object_get(j, "cpu_stats"), *pre = json_object_get(j, "precpu_stats");
    uint64_t total = u64_of(json_object_get(cpu, "cpu_usage"), "total_usage");
    uint64_t pre_total = u64_of(json_object_get(pre, "cpu_usage"), "total_usage");
    uint64_t sys = u64_of(cpu, "system_cpu_usage"), pre_sys = u64_of(pre, "system_cpu_usage");
    uint64_t online = u64_of(cpu, "online_cpus");
    if (online == 0) {
        json_t *per = json_object_get(json_object_get(cpu, "cpu_usage"), "percpu_usage");
        online = json_is_array(per) ? json_array_size(per) : 0;
    }
    m->cpu_percent = 0.0;
    /* The first sample of a stream has no precpu_stats: no interval, 0 %. */
    if (pre_sys > 0 && sys > pre_sys && total > pre_total)
        m->cpu_percent = (double)(total - pre_total) / (double)(sys - pre_sys) * (double)online * 100.0;
    json_t *mem = json_object_get(j, "memory_stats"), *ms = json_object_get(mem, "stats");
    uint64_t usage = u64_of(mem, "usage");
    uint64_t inactive = json_object_get(ms, "total_inactive_file") != NULL
                            ? u64_of(ms, "total_inactive_file")
                            : u64_of(ms, "inactive_file");
    m->memory_bytes = inactive < usage ? usage - inactive : usage;
    m->memory_limit_bytes = u64_of(mem, "limit");
    m->pids = u64_of(json_object_get(j, "pids_stats"), "current");
    m->rx_bytes = m->tx_bytes = 0;
    const char *name;
    json_t *net;
    json_t *nets = json_object_get(j, "networks");
    if (json_is_object(nets)) {
        json_object_foreach(nets, name, net) {
            m->rx_bytes += u64_of(net, "rx_bytes");
            m->tx_bytes += u64_of(net, "tx_bytes");
        }
    }
    m->have = 1;
    rc = 0;
done:
    json_decref(j);
    return rc;
}

/* See dk.h. #{cpu_percent, memory_bytes, memory_limit_bytes, pids, network_rx_bytes,
 * network_tx_bytes, ts}. */
void dk_metrics_encode(const struct dk_metrics *m, ei_x_buff *x) {
    ei_x_encode_map_header(x, 7);
    ei_x_encode_atom(x, "cpu_percent");
    ei_x_encode_double(x, m->cpu_percent);
    ei_x_encode_atom(x, "memory_bytes");
    ei_x_encode_ulonglong(x, m->memory_bytes);
    ei_x_encode_atom(x, "memory_limit_bytes");
    ei_x_encode_ulonglong(x, m->memory_limit_bytes);
    ei_x_encode_atom(x, "pids");
    ei_x_encode_ulonglong(x, m->pids);
    ei_x_encode_atom(x, "network_rx_bytes");
    ei_x_encode_ulonglong(x, m->rx_bytes);
    ei_x_encode_atom(x, "network_tx_bytes");
    ei_x_encode_ulonglong(x, m->tx_bytes);
    ei_x_encode_atom(x, "ts");
    ei_x_encode_longlong(x, m->ts);
}

/* The index of the first title in names found in titles, or -1. */
static int title_index(json_t *titles, const char *const *names) {
    size_t i;
    json_t *t;
    for (const char *const *n = names; *n != NULL; n++) {
        json_array_foreach(titles, i, t) {
            const char *s = json_string_value(t);
            if (s != NULL && strcmp(s, *n) == 0)
                return (int)i;
        }
    }
    return -1;
}

/* The string at index i of row, or NULL. */
static const char *cell(json_t *row, int i) {
    return i < 0 ? NULL : json_string_value(json_array_get(row, (size_t)i));
}

/* See dk.h. Rows whose PID is not a number are left out; RSS is in KiB. */
int dk_top_encode(const char *json, size_t len, ei_x_buff *x) {
    static const char *const pid_t_[] = {"PID", NULL};
    static const char *const cmd_t[] = {"COMMAND", "CMD", "COMM", NULL};
    static const char *const stat_t[] = {"STAT", "S", NULL};
    static const char *const rss_t[] = {"RSS", "RSZ", NULL};
    static const char *const cpu_t[] = {"%CPU", "C", NULL};
    json_t *j = json_loadb(json, len, 0, NULL);
    json_t *titles = json_object_get(j, "Titles"), *rows = json_object_get(j, "Processes");
    int rc = -1;
    if (!json_is_array(titles) || !(json_is_array(rows) || json_is_null(rows)))
        goto done;
    int ip = title_index(titles, pid_t_), ic = title_index(titles, cmd_t);
    int is = title_index(titles, stat_t), ir = title_index(titles, rss_t);
    int iu = title_index(titles, cpu_t);
    if (ip < 0)
        goto done;
    size_t i, n = 0;
    json_t *row;
    json_array_foreach(rows, i, row) {
        const char *p = cell(row, ip);
        char *end;
        if (p != NULL && strtol(p, &end, 10) > 0 && *end == '\0')
            n++;
    }
    if (n > 0)
        ei_x_encode_list_header(x, (long)n);
    json_array_foreach(rows, i, row) {
        const char *p = cell(row, ip), *c = cell(row, ic), *r = cell(row, ir), *u = cell(row, iu);
        char *end;
        long pid = p != NULL ? strtol(p, &end, 10) : 0;
        if (p == NULL || pid <= 0 || *end != '\0')
            continue;
        if (c == NULL)
            c = "";
        ei_x_encode_map_header(x, 5);
        ei_x_encode_atom(x, "pid");
        ei_x_encode_long(x, pid);
        ei_x_encode_atom(x, "name");
        ei_x_encode_binary(x, c, (int)strnlen(c, 4096));
        ei_x_encode_atom(x, "status");
        const char *stat = cell(row, is);
        ei_x_encode_atom(x, sbx_ps_state_atom(stat != NULL ? stat[0] : '?'));
        ei_x_encode_atom(x, "memory_bytes");
        ei_x_encode_ulonglong(x, r != NULL ? strtoull(r, NULL, 10) * 1024ull : 0);
        ei_x_encode_atom(x, "cpu_percent");
        ei_x_encode_double(x, u != NULL ? strtod(u, NULL) : 0.0);
    }
    ei_x_encode_empty_list(x);
    rc = 0;
done:
    json_decref(j);
    return rc;
}

/* See dk.h. A digest (name@sha256:...) keeps the whole reference as name and tag "". */
void dk_image_split(const char *image, char *name, size_t ncap, char *tag, size_t tcap) {
    const char *slash = strrchr(image, '/');
    const char *colon = strrchr(slash != NULL ? slash : image, ':');
    if (strchr(image, '@') != NULL) {
        snprintf(name, ncap, "%s", image);
        snprintf(tag, tcap, "%s", "");
    } else if (colon != NULL) {
        snprintf(name, ncap, "%.*s", (int)(colon - image), image);
        snprintf(tag, tcap, "%s", colon + 1);
    } else {
        snprintf(name, ncap, "%s", image);
        snprintf(tag, tcap, "%s", "latest");
    }
}

/* See dk.h. Bindings repeated for IPv4 and IPv6 count once. */
int dk_ports_parse(const char *json, size_t len, struct dk_port *out, int cap) {
    json_t *j = json_loadb(json, len, 0, NULL);
    json_t *ports = json_object_get(json_object_get(j, "NetworkSettings"), "Ports");
    const char *key;
    json_t *list;
    int n = 0;
    if (!json_is_object(ports))
        goto done;
    json_object_foreach(ports, key, list) {
        int cport = 0;
        char proto[8] = "";
        if (sscanf(key, "%d/%7[a-z]", &cport, proto) != 2 || cport <= 0 || cport > 65535 ||
            (strcmp(proto, "tcp") != 0 && strcmp(proto, "udp") != 0 && strcmp(proto, "sctp") != 0))
            continue;
        size_t i;
        json_t *b;
        json_array_foreach(list, i, b) {
            const char *hp = json_string_value(json_object_get(b, "HostPort"));
            char *end;
            long h = hp != NULL ? strtol(hp, &end, 10) : 0;
            if (hp == NULL || *end != '\0' || h <= 0 || h > 65535)
                continue;
            int dup = 0;
            for (int k = 0; k < n; k++)
                dup |= out[k].host == h && out[k].container == cport && strcmp(out[k].proto, proto) == 0;
            if (dup || n >= cap)
                continue;
            out[n].host = (int)h;
            out[n].container = cport;
            snprintf(out[n].proto, sizeof out[n].proto, "%s", proto);
            n++;
        }
    }
done:
    json_decref(j);
    return n;
}

/* See dk.h. */
void dk_ports_encode(const struct dk_port *p, int n, ei_x_buff *x) {
    if (n > 0)
        ei_x_encode_list_header(x, n);
    for (int i = 0; i < n; i++) {
        ei_x_encode_map_header(x, 3);
        ei_x_encode_atom(x, "host");
        ei_x_encode_long(x, p[i].host);
        ei_x_encode_atom(x, "container");
        ei_x_encode_long(x, p[i].container);
        ei_x_encode_atom(x, "proto");
        ei_x_encode_atom(x, p[i].proto);
    }
    ei_x_encode_empty_list(x);
}

/* See dk.h. Only a dotted IPv4 address is kept. */
void dk_ip_parse(const char *json, size_t len, char *out, size_t cap) {
    json_t *j = json_loadb(json, len, 0, NULL);
    json_t *ns = json_object_get(j, "NetworkSettings");
    const char *ip = json_string_value(json_object_get(ns, "IPAddress"));
    if (ip == NULL || ip[0] == '\0') {
        const char *name;
        json_t *net;
        ip = NULL;
        json_object_foreach(json_object_get(ns, "Networks"), name, net) {
            const char *a = json_string_value(json_object_get(net, "IPAddress"));
            if (ip == NULL && a != NULL && a[0] != '\0')
                ip = a;
        }
    }
    snprintf(out, cap, "%s", ip != NULL && strspn(ip, "0123456789.") == strlen(ip) ? ip : "");
    json_decref(j);
}
