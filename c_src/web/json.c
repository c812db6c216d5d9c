/* JSON for the HTTP side: Erlang terms as JSON, the sandbox summaries of the JSON API
 * and the page, and the /api/ routes. */
#include <ei.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/logbuf.h"
#include "core/sandbox.h"
#include "util/clock.h"
#include "web/web_int.h"

#define TERM_DEPTH 24      /* deeper terms are cut ("...") */
#define LOG_TAIL 200       /* log lines in a sandbox's detail */

/* See web_int.h. Bytes that are not UTF-8 become '?'. NULL when out of memory. */
json_t *web_json_str(const char *s, size_t len) {
    json_t *j = json_stringn(s, len);
    if (j != NULL)
        return j;
    char *c = malloc(len > 0 ? len : 1);
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        c[i] = (s[i] & 0x80) || s[i] == '\0' ? '?' : s[i];
    j = json_stringn(c, len);
    free(c);
    return j;
}

/* One term at *idx as JSON (advancing *idx); NULL on a term it cannot read. Maps become
 * objects (keys: atoms and binaries as they are, others printed), tuples and lists
 * arrays, atoms strings (true/false booleans, nil/undefined null), binaries strings,
 * pids, references and funs their printed form. */
static json_t *term(const char *buf, int *idx, int depth) {
    int type, size;
    if (ei_get_type(buf, idx, &type, &size) != 0)
        return NULL;
    if (depth > TERM_DEPTH) {
        if (ei_skip_term(buf, idx) != 0)
            return NULL;
        return json_string("...");
    }
    switch (type) {
    case ERL_SMALL_INTEGER_EXT:
    case ERL_INTEGER_EXT:
    case ERL_SMALL_BIG_EXT:
    case ERL_LARGE_BIG_EXT: {
        long long v;
        unsigned long long u;
        int at = *idx;
        if (ei_decode_longlong(buf, &at, &v) == 0) {
            *idx = at;
            return json_integer(v);
        }
        at = *idx;
        if (ei_decode_ulonglong(buf, &at, &u) == 0) {
            *idx = at;
            return json_real((double)u);
        }
        break;
    }
    case ERL_FLOAT_EXT:
    case NEW_FLOAT_EXT: {
        double d;
        if (ei_decode_double(buf, idx, &d) != 0)
            return NULL;
        return json_real(d);
    }
    case ERL_ATOM_EXT:
    case ERL_SMALL_ATOM_EXT:
    case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_UTF8_EXT: {
        char a[MAXATOMLEN_UTF8];
        if (ei_decode_atom(buf, idx, a) != 0)
            return NULL;
        if (strcmp(a, "true") == 0 || strcmp(a, "false") == 0)
            return json_boolean(a[0] == 't');
        if (strcmp(a, "nil") == 0 || strcmp(a, "undefined") == 0)
            return json_null();
        return web_json_str(a, strlen(a));
    }
    case ERL_BINARY_EXT: {
        /* The bytes are in buf: 1 tag byte and 4 length bytes precede them. */
        const char *data = buf + *idx + 5;
        if (ei_skip_term(buf, idx) != 0)
            return NULL;
        return web_json_str(data, (size_t)size);
    }
    case ERL_STRING_EXT: {
        const char *data = buf + *idx + 3;
        if (ei_skip_term(buf, idx) != 0)
            return NULL;
        return web_json_str(data, (size_t)size);
    }
    case ERL_NIL_EXT:
    case ERL_LIST_EXT:
    case ERL_SMALL_TUPLE_EXT:
    case ERL_LARGE_TUPLE_EXT: {
        int n;
        int is_list = type != ERL_SMALL_TUPLE_EXT && type != ERL_LARGE_TUPLE_EXT;
        if ((is_list ? ei_decode_list_header(buf, idx, &n) : ei_decode_tuple_header(buf, idx, &n)) != 0)
            return NULL;
        json_t *a = json_array();
        for (int i = 0; a != NULL && i < n; i++) {
            json_t *v = term(buf, idx, depth + 1);
            if (v == NULL || json_array_append_new(a, v) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        /* A proper list ends in NIL; an improper tail is added as one more element. */
        if (is_list && n > 0 && a != NULL) {
            int t2, s2;
            if (ei_get_type(buf, idx, &t2, &s2) == 0 && t2 == ERL_NIL_EXT)
                ei_skip_term(buf, idx);
            else if (json_array_append_new(a, term(buf, idx, depth + 1)) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case ERL_MAP_EXT: {
        int n;
        if (ei_decode_map_header(buf, idx, &n) != 0)
            return NULL;
        json_t *o = json_object();
        for (int i = 0; o != NULL && i < n; i++) {
            json_t *k = term(buf, idx, depth + 1);
            json_t *v = k != NULL ? term(buf, idx, depth + 1) : NULL;
            char *ks = k != NULL && !json_is_string(k) ? json_dumps(k, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
            const char *key = ks != NULL ? ks : k != NULL ? json_string_value(k) : NULL;
            int bad = v == NULL || key == NULL || json_object_set_new(o, key, v) != 0;
            free(ks);
            json_decref(k);
            if (bad) {
                json_decref(o);
                return NULL;
            }
        }
        return o;
    }
    default:
        break;
    }
    /* Pids, ports, references, funs, bit strings, big numbers: their printed form. */
    char *s = NULL;
    int at = *idx;
    if (ei_s_print_term(&s, buf, &at) < 0) {
        free(s);
        return NULL;
    }
    *idx = at;
    json_t *j = web_json_str(s, strlen(s));
    free(s);
    return j;
}

/* See web_int.h. */
json_t *web_term_json(const char *buf, size_t len) {
    int idx = 0;
    (void)len;
    return term(buf, &idx, 0);
}

/* Log query callback: appends {ts, stream, data}. */
static void add_line(void *arg, int64_t ts, enum sbx_stream stream, const char *data, size_t len) {
    json_t *line = json_pack("{s:I, s:s, s:o*}", "ts", (json_int_t)ts, "stream",
                             sbx_stream_name(stream), "data",
                             web_json_str(data, len));
    if (line != NULL)
        json_array_append_new(arg, line);
}

/* See web_int.h. {id, type, status, created_at, started_at, uptime_ms, restarts, cpu_percent,
 * memory_bytes, memory_limit_bytes, cpu_seconds, spark: {cpu, mem_mib}}; with detail also
 * history (status changes) and logs (the newest LOG_TAIL lines). No config: it may hold
 * secrets (environment). */
json_t *web_sandbox_json(struct web *w, const struct sbx_sandbox *sb, int detail) {
    struct web_entry *e = web_cache_find(w, sb->id);
    int64_t now = sbx_wall_ms();
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:i}", "id", sb->id, "type",
                          sbx_type_name(sb->cfg.type), "status", sbx_status_name(sb->status),
                          "created_at", (json_int_t)sb->created_at, "started_at",
                          (json_int_t)sb->started_at, "uptime_ms",
                          (json_int_t)(sb->status == SBX_ST_RUNNING && sb->started_at > 0
                                           ? now - sb->started_at : 0),
                          "restarts", sb->restart_count);
    if (j == NULL)
        return NULL;
    if (e != NULL && e->have_sample) {
        json_t *cpu = json_array(), *mem = json_array();
        for (unsigned i = 0; cpu != NULL && mem != NULL && i < e->spark_n; i++) {
            unsigned at = (e->spark_head + WEB_SPARK - e->spark_n + i) % WEB_SPARK;
            json_array_append_new(cpu, json_real(e->spark_cpu[at]));
            json_array_append_new(mem, json_real(e->spark_mem[at]));
        }
        json_object_set_new(j, "cpu_percent", json_real(e->cpu_percent));
        json_object_set_new(j, "memory_bytes", json_integer((json_int_t)e->memory_bytes));
        json_object_set_new(j, "memory_limit_bytes", json_integer((json_int_t)e->memory_limit_bytes));
        json_object_set_new(j, "cpu_seconds", json_real(web_cache_cpu_seconds(sb, e)));
        json_object_set_new(j, "spark", json_pack("{s:o*, s:o*}", "cpu", cpu, "mem_mib", mem));
    }
    if (!detail)
        return j;
    json_t *hist = json_array();
    for (unsigned i = 0; hist != NULL && e != NULL && i < e->hist_n; i++) {
        const struct web_change *c = &e->hist[(e->hist_head + WEB_HISTORY - e->hist_n + i) % WEB_HISTORY];
        json_array_append_new(hist, json_pack("{s:I, s:s, s:s}", "ts", (json_int_t)c->ts, "from",
                                              sbx_status_name((enum sbx_status)c->from), "to",
                                              sbx_status_name((enum sbx_status)c->to)));
    }
    json_t *logs = json_array();
    if (logs != NULL && sb->logs != NULL)
        sbx_logbuf_query(sb->logs, LOG_TAIL, 0, add_line, logs);
    json_object_set_new(j, "history", hist != NULL ? hist : json_null());
    json_object_set_new(j, "logs", logs != NULL ? logs : json_null());
    return j;
}

/* POST /api/sandboxes/:id/stop and /destroy: only with a token (the page's buttons).
 * Answers 202 at once; the change arrives as status events. */
static void action(struct web *w, struct evhttp_request *req, struct sbx_sandbox *sb, const char *what) {
    const char *csrf = evhttp_find_header(evhttp_request_get_input_headers(req), "X-Sandboxd");
    if (!w->has_token || csrf == NULL) {
        web_reply_json(req, 403, json_pack("{s:s}", "error", w->has_token ? "missing X-Sandboxd header"
                                                                          : "read_only"));
        return;
    }
    if (sb->destroying) {
        web_reply_json(req, 409, json_pack("{s:s}", "error", "destroying"));
        return;
    }
    if (strcmp(what, "destroy") == 0)
        sbx_sandbox_destroy(sb, "destroyed");
    else if (sb->status == SBX_ST_RUNNING || sb->status == SBX_ST_STARTING ||
             sb->status == SBX_ST_PAUSED)
        sbx_sandbox_stop(sb, "stopped");
    web_reply_json(req, 202, json_pack("{s:s}", "result", "accepted"));
}

/* See web_int.h. path is after "/api/": sandboxes, sandboxes/ID, sandboxes/ID/stop|destroy. */
void web_api(struct web *w, struct evhttp_request *req, const char *path) {
    struct sbx_core *core = sbx_core_get();
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    char id[SBX_ID_MAX + 1];
    if (strcmp(path, "sandboxes") == 0 && cmd == EVHTTP_REQ_GET) {
        json_t *a = json_array();
        for (struct sbx_sandbox *sb = core != NULL ? core->first : NULL; a != NULL && sb != NULL; sb = sb->next)
            json_array_append_new(a, web_sandbox_json(w, sb, 0));
        web_reply_json(req, 200, json_pack("{s:o*}", "sandboxes", a));
        return;
    }
    if (strncmp(path, "sandboxes/", 10) != 0 || core == NULL)
        goto not_found;
    const char *rest = path + 10, *slash = strchr(rest, '/');
    size_t n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    if (n == 0 || n > SBX_ID_MAX)
        goto not_found;
    memcpy(id, rest, n);
    id[n] = '\0';
    struct sbx_sandbox *sb = sbx_sandbox_find(core, id);
    if (sb == NULL)
        goto not_found;
    if (slash == NULL && cmd == EVHTTP_REQ_GET) {
        web_reply_json(req, 200, web_sandbox_json(w, sb, 1));
        return;
    }
    if (slash != NULL && cmd == EVHTTP_REQ_POST &&
        (strcmp(slash + 1, "stop") == 0 || strcmp(slash + 1, "destroy") == 0)) {
        action(w, req, sb, slash + 1);
        return;
    }
not_found:
    web_reply_json(req, 404, json_pack("{s:s}", "error", "not_found"));
}
