/* GET /metrics: the Prometheus text exposition (version 0.0.4), base units, built from
 * the core's state and the tap's cache only: nothing here waits on a backend. */
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "backends/backend.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "core/stats.h"
#include "dist/node.h"
#include "util/clock.h"
#include "util/rss.h"
#include "web/web_int.h"

#define N_TYPES 4
#define N_STATUS (SBX_ST_ERROR + 1)

/* Appends "# HELP" and "# TYPE" lines. */
static void head(struct evbuffer *out, const char *name, const char *type, const char *help) {
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Appends s as a label value: backslash, double quote and newline escaped. */
static void label_value(struct evbuffer *out, const char *s) {
    for (; *s != '\0'; s++) {
        if (*s == '\\' || *s == '"')
            evbuffer_add_printf(out, "\\%c", *s);
        else if (*s == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add(out, s, 1);
    }
}

/* The daemon's own figures. */
static void daemon_part(struct web *w, struct sbx_core *core, struct evbuffer *out) {
    static const char *const results[] = {"ok", "error", "exception", "cancelled"};
    head(out, "sandboxd_uptime_seconds", "gauge", "Seconds since sandboxd started.");
    evbuffer_add_printf(out, "sandboxd_uptime_seconds %.3f\n",
                        (double)(sbx_mono_ms() - w->node->started_mono_ms) / 1000.0);
    head(out, "sandboxd_resident_memory_bytes", "gauge", "Resident memory of sandboxd.");
    evbuffer_add_printf(out, "sandboxd_resident_memory_bytes %lld\n", sbx_rss_bytes());
    head(out, "sandboxd_connections", "gauge", "Open Erlang distribution connections.");
    evbuffer_add_printf(out, "sandboxd_connections %zu\n", sbx_node_conn_count(w->node));
    head(out, "sandboxd_http_connections", "gauge", "Open HTTP connections (this scrape's among them).");
    evbuffer_add_printf(out, "sandboxd_http_connections %zu\n", web_conncap_open(w));
    head(out, "sandboxd_http_connections_max", "gauge", "The cap on open HTTP connections.");
    evbuffer_add_printf(out, "sandboxd_http_connections_max %zu\n", web_conncap_max(w));
    head(out, "sandboxd_http_connection_cap_reached_total", "counter",
         "Times the HTTP connection cap was reached (new clients then wait).");
    evbuffer_add_printf(out, "sandboxd_http_connection_cap_reached_total %llu\n",
                        (unsigned long long)web_conncap_pauses(w));
    head(out, "sandboxd_http_event_streams", "gauge", "Open Server-Sent Events streams.");
    evbuffer_add_printf(out, "sandboxd_http_event_streams %zu\n", w->sse_count);
    head(out, "sandboxd_subscribers", "gauge", "Event subscriptions of Erlang processes.");
    evbuffer_add_printf(out, "sandboxd_subscribers %zu\n", core != NULL ? core->sub_count : 0);
    head(out, "sandboxd_rpc_calls_total", "counter", "rpc calls answered, by function and result.");
    for (size_t i = 0; i < SBX_RPC_MAX_FUNCS && sbx_stats.fns[i].name != NULL; i++)
        for (int r = 0; r < SBX_RPC_RESULTS; r++)
            evbuffer_add_printf(out, "sandboxd_rpc_calls_total{function=\"%s\",result=\"%s\"} %llu\n",
                                sbx_stats.fns[i].name, results[r],
                                (unsigned long long)sbx_stats.fns[i].calls[r]);
    head(out, "sandboxd_rpc_duration_seconds", "histogram",
         "Time from an rpc call's arrival to its answer.");
    unsigned long long cum = 0;
    for (int b = 0; b < SBX_RPC_BUCKETS; b++) {
        cum += sbx_stats.rpc_buckets[b];
        evbuffer_add_printf(out, "sandboxd_rpc_duration_seconds_bucket{le=\"%g\"} %llu\n",
                            sbx_rpc_bucket_le[b], cum);
    }
    cum += sbx_stats.rpc_buckets[SBX_RPC_BUCKETS];
    evbuffer_add_printf(out, "sandboxd_rpc_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    evbuffer_add_printf(out, "sandboxd_rpc_duration_seconds_sum %.9f\n", sbx_stats.rpc_seconds_sum);
    evbuffer_add_printf(out, "sandboxd_rpc_duration_seconds_count %llu\n",
                        (unsigned long long)sbx_stats.rpc_count);
    head(out, "sandboxd_events_delivered_total", "counter", "Sandbox events sent to subscribers.");
    evbuffer_add_printf(out, "sandboxd_events_delivered_total %llu\n",
                        (unsigned long long)sbx_stats.events_delivered);
    head(out, "sandboxd_events_dropped_total", "counter",
         "Sandbox events a subscriber lost (no credit, or a backlogged connection).");
    evbuffer_add_printf(out, "sandboxd_events_dropped_total %llu\n",
                        (unsigned long long)(core != NULL ? core->events_dropped : 0));
    head(out, "sandboxd_http_events_dropped_total", "counter",
         "Events an event stream lost because its client read too slowly.");
    evbuffer_add_printf(out, "sandboxd_http_events_dropped_total %llu\n",
                        (unsigned long long)w->sse_dropped);
    head(out, "sandboxd_trace_events_relayed_total", "counter", "Trace events relayed from traced BEAM nodes.");
    evbuffer_add_printf(out, "sandboxd_trace_events_relayed_total %llu\n",
                        (unsigned long long)sbx_stats.trace_events_relayed);
    const char *why = NULL;
    int docker_up = core != NULL && sbx_backend_docker.available(core, &why);
    head(out, "sandboxd_docker_engine_up", "gauge", "1 if the Docker engine answers.");
    evbuffer_add_printf(out, "sandboxd_docker_engine_up %d\n", docker_up);
}

/* Sandboxes by type and status, then the per-sandbox series under cAdvisor's names. */
static void sandbox_part(struct web *w, struct sbx_core *core, struct evbuffer *out) {
    size_t counts[N_TYPES][N_STATUS];
    memset(counts, 0, sizeof counts);
    for (struct sbx_sandbox *sb = core != NULL ? core->first : NULL; sb != NULL; sb = sb->next)
        if ((int)sb->cfg.type < N_TYPES)
            counts[sb->cfg.type][sb->status]++;
    head(out, "sandboxd_sandboxes", "gauge", "Sandboxes by type and status.");
    for (int t = 0; t < N_TYPES; t++)
        for (int s = 0; s < N_STATUS; s++)
            evbuffer_add_printf(out, "sandboxd_sandboxes{type=\"%s\",status=\"%s\"} %zu\n",
                                sbx_type_name((enum sbx_type)t), sbx_status_name((enum sbx_status)s),
                                counts[t][s]);
    static const struct {
        const char *name, *type, *help;
    } series[] = {
        {"container_cpu_usage_seconds_total", "counter", "CPU time used by the sandbox's workload."},
        {"container_memory_usage_bytes", "gauge", "Memory used by the sandbox's workload."},
        {"container_spec_memory_limit_bytes", "gauge", "The sandbox's memory limit (0: none)."},
        {"container_network_receive_bytes_total", "counter", "Bytes received (Docker sandboxes)."},
    };
    for (size_t k = 0; k < sizeof series / sizeof series[0]; k++) {
        head(out, series[k].name, series[k].type, series[k].help);
        for (struct sbx_sandbox *sb = core != NULL ? core->first : NULL; sb != NULL; sb = sb->next) {
            struct web_entry *e = web_cache_find(w, sb->id);
            if (e == NULL || !e->have_sample || (k == 3 && !e->have_rx))
                continue;
            evbuffer_add_printf(out, "%s{id=\"", series[k].name);
            label_value(out, sb->id);
            evbuffer_add_printf(out, "\",type=\"%s\",node=\"", sbx_type_name(sb->cfg.type));
            label_value(out, w->node->name);
            evbuffer_add(out, "\"} ", 3);
            if (k == 0)
                evbuffer_add_printf(out, "%.6f\n", web_cache_cpu_seconds(sb, e));
            else
                evbuffer_add_printf(out, "%llu\n",
                                    (unsigned long long)(k == 1   ? e->memory_bytes
                                                         : k == 2 ? e->memory_limit_bytes
                                                                  : e->rx_bytes));
        }
    }
}

/* See web_int.h. */
void web_metrics_render(struct web *w, struct evbuffer *out) {
    struct sbx_core *core = sbx_core_get();
    daemon_part(w, core, out);
    sandbox_part(w, core, out);
}
