/* Subscriptions and event fan-out. */
#include "core/subs.h"
#include "core/stats.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "core/core.h"
#include "core/sandbox.h"
#include "dist/conn.h"
#include "dist/control.h"
#include "dist/node.h"
#include "rpc/rcall.h"
#include "util/clock.h"

static const char *const topic_names[] = {"status", "log", "metrics", "processes", "trace"};

/* Frees s and its copied references; sends nothing (no demonitor). */
static void sub_free(struct sbx_sub *s) {
    free(s->ref);
    free(s->check_ref);
    free(s);
}

/* Asks the subscriber's node for the subscriber's message queue length. */
static void ask_queue(struct sbx_core *core, struct sbx_sub *s) {
    int64_t now = sbx_mono_ms();
    if (s->check_ref != NULL || now < s->next_check_ms)
        return;
    ei_x_buff args, ref;
    ei_x_new(&args);
    ei_x_new(&ref);
    ei_x_encode_list_header(&args, 2);
    sbx_node_encode_rpid(core->node, &args, &s->pid);
    ei_x_encode_atom(&args, "message_queue_len");
    ei_x_encode_empty_list(&args);
    if (sbx_rcall(core->node, core->proc, s->pid.conn_id, "erlang", "process_info", args.buff,
                  (size_t)args.index, &ref) == 0) {
        s->check_ref = malloc((size_t)ref.index);
        if (s->check_ref != NULL) {
            memcpy(s->check_ref, ref.buff, (size_t)ref.index);
            s->check_ref_len = (size_t)ref.index;
        }
    }
    s->next_check_ms = now + SBX_SUB_RECHECK_MS;
    ei_x_free(&args);
    ei_x_free(&ref);
}

/* See subs.h. msg must be validated. A matching answer that is
 * not a short enough queue sets the credit to 0. */
int sbx_subs_check_answer(struct sbx_core *core, const char *msg) {
    const char *ref;
    size_t ref_len;
    int vidx;
    if (sbx_rcall_result(msg, &ref, &ref_len, &vidx) < 0)
        return 0;
    for (struct sbx_sub *s = core->subs; s != NULL; s = s->next) {
        if (s->check_ref == NULL || !sbx_ref_equal(s->check_ref, s->check_ref_len, ref, ref_len))
            continue;
        free(s->check_ref);
        s->check_ref = NULL;
        /* {message_queue_len, N}; anything else (the process is gone) stops delivery. */
        int arity;
        char atom[MAXATOMLEN_UTF8];
        long len = -1;
        if (vidx >= 0 && ei_decode_tuple_header(msg, &vidx, &arity) == 0 && arity == 2 &&
            sbx_decode_atom(msg, &vidx, atom) == 0 && ei_decode_long(msg, &vidx, &len) == 0 &&
            len >= 0 && len <= SBX_SUB_MAX_QUEUE)
            s->credit = SBX_SUB_WINDOW;
        else
            s->credit = 0;
        return 1;
    }
    return 0;
}

/* See subs.h. ref_out is appended to only on success; on -1, *why is the atom name
 * limit_reached, no_memory or noconnection. Re-arms the metrics timers concerned. */
int sbx_subs_add(struct sbx_core *core, const char *sandbox_id, const struct sbx_rpid *pid,
                 unsigned topics, ei_x_buff *ref_out, const char **why) {
    struct sbx_sub *s = NULL;
    ei_x_buff ref;
    ei_x_new(&ref);
    int rc = -1;

    *why = "limit_reached";
    if (core->sub_count >= core->max_subscribers)
        goto done;
    *why = "no_memory";
    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto done;
    snprintf(s->sandbox_id, sizeof s->sandbox_id, "%s", sandbox_id != NULL ? sandbox_id : "");
    s->topics = topics;
    s->pid = *pid;
    s->credit = SBX_SUB_WINDOW;
    *why = "noconnection";
    if (sbx_core_monitor(core, pid, &ref) != 0)
        goto done;
    s->ref = malloc((size_t)ref.index);
    if (s->ref == NULL) {
        sbx_core_demonitor(core, pid, ref.buff, (size_t)ref.index);
        goto done;
    }
    memcpy(s->ref, ref.buff, (size_t)ref.index);
    s->ref_len = (size_t)ref.index;
    ei_x_append_buf(ref_out, ref.buff, ref.index);
    s->next = core->subs;
    core->subs = s;
    core->sub_count++;
    s = NULL;
    rc = 0;
    /* A new metrics/processes subscriber may need timers running. */
    for (struct sbx_sandbox *sb = core->first; sb != NULL; sb = sb->next)
        if (sandbox_id == NULL || strcmp(sb->id, sandbox_id) == 0)
            sbx_sandbox_metrics_timer(sb);
done:
    free(s);
    ei_x_free(&ref);
    return rc;
}

/* Unlinks and frees the subscriptions for which match() holds. */
static int remove_where(struct sbx_core *core, int (*match)(const struct sbx_sub *, const void *),
                        const void *arg, int demonitor) {
    int n = 0;
    struct sbx_sub **pp = &core->subs;
    while (*pp != NULL) {
        struct sbx_sub *s = *pp;
        if (match(s, arg)) {
            *pp = s->next;
            if (demonitor)
                sbx_core_demonitor(core, &s->pid, s->ref, s->ref_len);
            sub_free(s);
            core->sub_count--;
            n++;
        } else {
            pp = &s->next;
        }
    }
    return n;
}

struct ref_arg {
    const char *ref;
    size_t len;
};

/* remove_where predicate: the SubRef equals arg (a struct ref_arg). */
static int match_ref(const struct sbx_sub *s, const void *arg) {
    const struct ref_arg *r = arg;
    return sbx_ref_equal(s->ref, s->ref_len, r->ref, r->len);
}

/* See subs.h. ref stays the caller's; with demonitor,
 * DEMONITOR_P goes out for the removed subscription. */
int sbx_subs_remove(struct sbx_core *core, const char *ref, size_t ref_len, int demonitor) {
    struct ref_arg r = {ref, ref_len};
    return remove_where(core, match_ref, &r, demonitor) > 0;
}

/* remove_where predicate: the subscriber is behind connection *arg. */
static int match_conn(const struct sbx_sub *s, const void *arg) {
    return s->pid.conn_id == *(const uint64_t *)arg;
}

/* See subs.h. Sends nothing: the monitors went with the connection. */
void sbx_subs_conn_down(struct sbx_core *core, uint64_t conn_id) {
    remove_where(core, match_conn, &conn_id, 0);
}

/* See subs.h. Leaves the list empty and sub_count 0. */
void sbx_subs_free_all(struct sbx_core *core) {
    while (core->subs != NULL) {
        struct sbx_sub *s = core->subs;
        core->subs = s->next;
        sub_free(s);
    }
    core->sub_count = 0;
}

/* remove_where predicate: subscribed to exactly that sandbox (not to all). */
static int match_sandbox(const struct sbx_sub *s, const void *arg) {
    return strcmp(s->sandbox_id, (const char *)arg) == 0;
}

/* See subs.h. Subscriptions to all sandboxes stay; the removed ones are demonitored. */
void sbx_subs_sandbox_gone(struct sbx_core *core, const char *sandbox_id) {
    remove_where(core, match_sandbox, sandbox_id, 1);
    sbx_stats_tap_gone(sandbox_id);
}

/* 1 if s wants topic events of sb. */
static int applies(const struct sbx_sub *s, const struct sbx_sandbox *sb, enum sbx_topic topic) {
    return (s->topics & (1u << topic)) && (s->sandbox_id[0] == '\0' || strcmp(s->sandbox_id, sb->id) == 0);
}

/* See subs.h. */
int sbx_subs_wanted_by_subscriber(const struct sbx_core *core, const struct sbx_sandbox *sb,
                                  enum sbx_topic topic) {
    for (const struct sbx_sub *s = core->subs; s != NULL; s = s->next)
        if (applies(s, sb, topic))
            return 1;
    return 0;
}

/* See subs.h. */
int sbx_subs_wanted(const struct sbx_core *core, const struct sbx_sandbox *sb, enum sbx_topic topic) {
    for (const struct sbx_sub *s = core->subs; s != NULL; s = s->next)
        if (applies(s, sb, topic))
            return 1;
    return sbx_stats_tap_wants(sb, topic);
}

/* 1 if the encoded map has the atom key `dropped` (a trace event is relayed as the traced
 * node sent it, so it may have one: a second one would make a map the subscriber's node
 * cannot decode, and it would drop its connection). The map is a validated term. */
static int has_dropped_key(const char *map) {
    int idx = 0, pairs;
    char atom[MAXATOMLEN_UTF8];
    if (ei_decode_map_header(map, &idx, &pairs) != 0)
        return 0;
    for (int i = 0; i < pairs; i++) {
        int k = idx;
        if (ei_decode_atom(map, &k, atom) == 0 && strcmp(atom, "dropped") == 0)
            return 1;
        if (ei_skip_term(map, &idx) != 0 || ei_skip_term(map, &idx) != 0)
            return 0;
    }
    return 0;
}

/* Fan-out of sbx_subs_publish and sbx_subs_publish_last: payload stays the caller's. A
 * subscriber without credit (unless last), or behind a backlogged connection, loses the
 * event (counted) and is asked for its queue length. payload_pairs < 0 marks a payload
 * that is not a map and cannot carry dropped. */
static void publish(struct sbx_core *core, const struct sbx_sandbox *sb, enum sbx_topic topic,
                    const char *payload, size_t payload_len, int payload_pairs, int last) {
    sbx_stats_tap_event(sb, topic, payload, payload_len);
    for (struct sbx_sub *s = core->subs; s != NULL; s = s->next) {
        if (!applies(s, sb, topic))
            continue;
        struct sbx_conn *c = sbx_node_conn_by_id(core->node, s->pid.conn_id);
        if (c == NULL)
            continue;
        if ((s->credit <= 0 && !last) ||
            evbuffer_get_length(bufferevent_get_output(c->bev)) > SBX_SUB_MAX_BACKLOG) {
            ask_queue(core, s);
            s->dropped++;
            core->events_dropped++;
            continue;
        }
        ei_x_buff m;
        ei_x_new_with_version(&m);
        ei_x_encode_tuple_header(&m, 4);
        ei_x_encode_atom(&m, "sandbox_event");
        ei_x_encode_binary(&m, sb->id, (int)strlen(sb->id));
        ei_x_encode_atom(&m, topic_names[topic]);
        if (s->dropped > 0 && payload_pairs >= 0 && !has_dropped_key(payload)) {
            /* The map with one more pair: dropped => N. */
            int idx = 0, arity;
            ei_decode_map_header(payload, &idx, &arity);
            ei_x_encode_map_header(&m, arity + 1);
            ei_x_append_buf(&m, payload + idx, (int)(payload_len - (size_t)idx));
            ei_x_encode_atom(&m, "dropped");
            ei_x_encode_ulonglong(&m, s->dropped);
            s->dropped = 0;
        } else {
            ei_x_append_buf(&m, payload, (int)payload_len);
        }
        if (sbx_node_send_msg(core->node, core->proc, &s->pid, NULL, 0, &m) == 0) {
            s->sent++;
            sbx_stats.events_delivered++;
            s->credit -= m.index;
            /* Asked early (an eighth of the window spent): the answer travels behind
             * the events already sent, and must come back before the rest is spent, or a
             * subscriber that keeps up would lose events on a busy machine. */
            if (s->credit < SBX_SUB_WINDOW - SBX_SUB_WINDOW / 8)
                ask_queue(core, s);
        }
        ei_x_free(&m);
    }
}

/* See subs.h. */
void sbx_subs_publish(struct sbx_core *core, const struct sbx_sandbox *sb, enum sbx_topic topic,
                      const char *payload, size_t payload_len, int payload_pairs) {
    publish(core, sb, topic, payload, payload_len, payload_pairs, 0);
}

/* See subs.h. */
void sbx_subs_publish_last(struct sbx_core *core, const struct sbx_sandbox *sb, enum sbx_topic topic,
                           const char *payload, size_t payload_len, int payload_pairs) {
    publish(core, sb, topic, payload, payload_len, payload_pairs, 1);
}
