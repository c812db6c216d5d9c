/* The event tap of the HTTP side: keeps the latest metrics sample, a short sparkline and
 * the status history of each sandbox (what /metrics and the page read without asking
 * any backend), and forwards events to the event streams. */
#include <ei.h>
#include <stdlib.h>
#include <string.h>

#include "core/sandbox.h"
#include "core/stats.h"
#include "util/clock.h"
#include "web/web_int.h"

/* FNV-1a of an id, for the buckets. */
static size_t bucket_of(const char *id) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)(h % WEB_BUCKETS);
}

/* See web_int.h. NULL if the tap has seen nothing of id. */
struct web_entry *web_cache_find(struct web *w, const char *id) {
    for (struct web_entry *e = w->buckets[bucket_of(id)]; e != NULL; e = e->next)
        if (strcmp(e->id, id) == 0)
            return e;
    return NULL;
}

/* The entry of id, made if missing; NULL when out of memory. Owned by w. */
static struct web_entry *entry_for(struct web *w, const char *id) {
    struct web_entry *e = web_cache_find(w, id);
    if (e != NULL)
        return e;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    snprintf(e->id, sizeof e->id, "%s", id);
    size_t b = bucket_of(id);
    e->next = w->buckets[b];
    w->buckets[b] = e;
    w->entries++;
    return e;
}

/* See web_int.h. The process backend's own cumulative figure (from the cgroup or
 * /proc, kept in sb at each sample); others: cpu_percent integrated over time. */
double web_cache_cpu_seconds(const struct sbx_sandbox *sb, const struct web_entry *e) {
    if (sb->cfg.type == SBX_TYPE_PROCESS && sb->metrics_last_mono > 0)
        return (double)sb->metrics_last_ns / 1e9;
    return e != NULL ? e->cpu_seconds : 0.0;
}

/* Reads the numbers of a metrics map into e. */
static void take_sample(struct web_entry *e, const char *buf) {
    int idx = 0, pairs;
    char key[MAXATOMLEN];
    if (ei_decode_map_header(buf, &idx, &pairs) != 0)
        return;
    double cpu = 0;
    for (int i = 0; i < pairs; i++) {
        if (ei_decode_atom(buf, &idx, key) != 0)
            return;
        int type, size, at = idx;
        unsigned long long u = 0;
        double d = 0;
        if (ei_get_type(buf, &at, &type, &size) != 0)
            return;
        if (type == ERL_FLOAT_EXT || type == NEW_FLOAT_EXT)
            ei_decode_double(buf, &at, &d);
        else if (ei_decode_ulonglong(buf, &at, &u) == 0)
            d = (double)u;
        if (strcmp(key, "cpu_percent") == 0)
            cpu = d;
        else if (strcmp(key, "memory_bytes") == 0)
            e->memory_bytes = u;
        else if (strcmp(key, "memory_limit_bytes") == 0)
            e->memory_limit_bytes = u;
        else if (strcmp(key, "network_rx_bytes") == 0) {
            e->rx_bytes = u;
            e->have_rx = 1;
        }
        if (ei_skip_term(buf, &idx) != 0)
            return;
    }
    int64_t now = sbx_mono_ms();
    if (e->have_sample && now > e->sample_mono_ms)
        e->cpu_seconds += cpu / 100.0 * (double)(now - e->sample_mono_ms) / 1000.0;
    e->cpu_percent = cpu;
    e->sample_mono_ms = now;
    e->have_sample = 1;
    e->spark_cpu[e->spark_head] = (float)cpu;
    e->spark_mem[e->spark_head] = (float)((double)e->memory_bytes / 1048576.0);
    e->spark_head = (e->spark_head + 1) % WEB_SPARK;
    if (e->spark_n < WEB_SPARK)
        e->spark_n++;
}

/* Records a status change (the status event's from, to and ts). */
static void take_status(struct web_entry *e, const struct sbx_sandbox *sb, const char *buf) {
    int idx = 0, pairs;
    char key[MAXATOMLEN], val[MAXATOMLEN];
    struct web_change c = {.ts = sbx_wall_ms(), .from = (uint8_t)sb->status, .to = (uint8_t)sb->status};
    if (ei_decode_map_header(buf, &idx, &pairs) != 0)
        return;
    for (int i = 0; i < pairs; i++) {
        if (ei_decode_atom(buf, &idx, key) != 0)
            return;
        int at = idx;
        long long ts;
        if (strcmp(key, "ts") == 0 && ei_decode_longlong(buf, &at, &ts) == 0)
            c.ts = ts;
        else if (strcmp(key, "from") == 0 && ei_decode_atom(buf, &at, val) == 0)
            for (int s = 0; s <= SBX_ST_ERROR; s++)
                if (strcmp(val, sbx_status_name((enum sbx_status)s)) == 0)
                    c.from = (uint8_t)s;
        if (ei_skip_term(buf, &idx) != 0)
            return;
    }
    e->hist[e->hist_head] = c;
    e->hist_head = (e->hist_head + 1) % WEB_HISTORY;
    if (e->hist_n < WEB_HISTORY)
        e->hist_n++;
}

/* Tap wants: status and metrics always (the cache), logs and trace while a stream
 * watches the sandbox. */
static int tap_wants(void *arg, const struct sbx_sandbox *sb, enum sbx_topic topic) {
    struct web *w = arg;
    if (topic == SBX_TOPIC_STATUS || topic == SBX_TOPIC_METRICS)
        return 1;
    if (topic == SBX_TOPIC_LOG || topic == SBX_TOPIC_TRACE)
        return web_sse_wants(w, sb->id, topic);
    return 0;
}

/* Tap event: updates the cache, then hands the event to the streams as
 * {id, topic, data, ...} (status events also carry type and the new status). */
static void tap_event(void *arg, const struct sbx_sandbox *sb, enum sbx_topic topic,
                      const char *payload, size_t len) {
    static const char *const topics[] = {"status", "log", "metrics", "processes", "trace"};
    struct web *w = arg;
    struct web_entry *e = entry_for(w, sb->id);
    if (e != NULL && topic == SBX_TOPIC_METRICS)
        take_sample(e, payload);
    if (e != NULL && topic == SBX_TOPIC_STATUS)
        take_status(e, sb, payload);
    if (!web_sse_wants(w, sb->id, topic))
        return;
    json_t *data = topic == SBX_TOPIC_STATUS ? web_sandbox_json(w, sb, 0) : web_term_json(payload, len);
    json_t *ev = json_pack("{s:s, s:s, s:o*}", "id", sb->id, "topic", topics[topic], "data", data);
    if (ev == NULL)
        return;
    if (topic == SBX_TOPIC_STATUS) {
        json_t *p = web_term_json(payload, len);
        if (p != NULL)
            json_object_set_new(ev, "change", p);
    }
    web_sse_publish(w, sb->id, topic, ev);
}

/* Tap gone: forgets the sandbox, and tells the streams. */
static void tap_gone(void *arg, const char *id) {
    struct web *w = arg;
    struct web_entry **pp = &w->buckets[bucket_of(id)];
    while (*pp != NULL && strcmp((*pp)->id, id) != 0)
        pp = &(*pp)->next;
    if (*pp != NULL) {
        struct web_entry *e = *pp;
        *pp = e->next;
        free(e);
        w->entries--;
    }
    if (web_sse_wants(w, id, SBX_TOPIC_STATUS))
        web_sse_publish(w, id, SBX_TOPIC_STATUS, json_pack("{s:s, s:s}", "id", id, "topic", "gone"));
}

static struct sbx_tap the_tap;

/* See web_int.h. */
void web_cache_install(struct web *w) {
    the_tap = (struct sbx_tap){.wants = tap_wants, .event = tap_event, .gone = tap_gone, .arg = w};
    sbx_stats_set_tap(&the_tap);
}

/* See web_int.h. Removes the tap first, then frees every entry. */
void web_cache_free(struct web *w) {
    sbx_stats_set_tap(NULL);
    for (size_t b = 0; b < WEB_BUCKETS; b++) {
        while (w->buckets[b] != NULL) {
            struct web_entry *e = w->buckets[b];
            w->buckets[b] = e->next;
            free(e);
        }
    }
    w->entries = 0;
}
