/* Traces of BEAM sandboxes: registry, sink processes, relay (see trace.h). */
#include "trace/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backends/beam/beam.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "core/stats.h"
#include "core/subs.h"
#include "dist/control.h"
#include "dist/node.h"
#include "rpc/remote.h"
#include "trace/spec.h"
#include "util/clock.h"
#include "util/log.h"

#define AGENT "sbx_trace_agent"
#define START_TIMEOUT_MS 10000
#define STOP_GRACE_MS 5000 /* a stop, or the duration, overrun by the agent */
#define REF_MAX 512

enum tstate { T_STARTING, T_RUNNING, T_STOPPING };

struct trace {
    struct trace *next;
    uint64_t serial;
    struct sbx_core *core;
    char id[SBX_ID_MAX + 1];
    struct sbx_beam_target target;
    char ref[REF_MAX]; /* the TraceRef, encoded */
    size_t ref_len;
    struct sbx_proc *sink; /* owned; its data is the serial */
    ei_x_buff args;        /* [StartMap] for sbx_trace_agent:start/1 */
    enum tstate state;
    int loaded;            /* code:load_binary was tried */
    int abandoned;         /* the starter left: stop as soon as it runs */
    uint64_t start_key;
    sbx_trace_answer_fn start_done;
    uint64_t stop_key;
    sbx_trace_answer_fn stop_done;
    struct sbx_rpid agent;
    int has_agent;
    char mon_ref[REF_MAX]; /* the sink's monitor on the agent */
    size_t mon_ref_len;
    long duration_ms;
    long max_events;       /* relayed at most (the agent enforces it; so does the relay) */
    struct event *timer;
    uint64_t relayed;
};

static struct trace *traces;
static size_t ntraces;
static uint64_t next_serial = 1;

static void remote_done(uint64_t key, const struct sbx_remote_result *res);
static void load_done(uint64_t key, const struct sbx_remote_result *res);
static int load_agent(struct trace *t);

/* The trace with that serial, or NULL. */
static struct trace *by_serial(uint64_t serial) {
    for (struct trace *t = traces; t != NULL; t = t->next)
        if (t->serial == serial)
            return t;
    return NULL;
}

/* See trace.h. */
size_t sbx_trace_count(void) { return ntraces; }

/* MONITOR_P (19) or DEMONITOR_P (20) from the sink to the agent; dropped if the agent's
 * node is not connected. */
static void sink_monitor(struct trace *t, int op) {
    ei_x_buff ctl;
    ei_x_new_with_version(&ctl);
    ei_x_encode_tuple_header(&ctl, 4);
    ei_x_encode_long(&ctl, op);
    sbx_node_encode_self_pid(t->core->node, &ctl, t->sink);
    if (sbx_node_encode_rpid(t->core->node, &ctl, &t->agent) == 0) {
        ei_x_append_buf(&ctl, t->mon_ref, (int)t->mon_ref_len);
        sbx_node_send(t->core->node, t->agent.conn_id, &ctl, NULL);
    }
    ei_x_free(&ctl);
}

/* Sends {sbx_trace_stop, Ref} from the sink to the agent (dropped if unreachable). */
static void tell_agent_stop(struct trace *t) {
    if (!t->has_agent || t->sink == NULL)
        return;
    ei_x_buff m;
    ei_x_new_with_version(&m);
    ei_x_encode_tuple_header(&m, 2);
    ei_x_encode_atom(&m, "sbx_trace_stop");
    ei_x_append_buf(&m, t->ref, (int)t->ref_len);
    sbx_node_send_msg(t->core->node, t->sink, &t->agent, NULL, 0, &m);
    ei_x_free(&m);
}

/* Publishes one event map (encoded, no version byte) as a trace event of the trace's
 * sandbox; anything but a map is skipped. last: the trace's final event, which reaches
 * even a subscriber out of credit (core/subs.h). */
static void publish(struct trace *t, const char *map, size_t len, int last) {
    struct sbx_sandbox *sb = sbx_sandbox_find(t->core, t->id);
    int idx = 0, pairs;
    if (sb == NULL || ei_decode_map_header(map, &idx, &pairs) != 0)
        return;
    if (last)
        sbx_subs_publish_last(t->core, sb, SBX_TOPIC_TRACE, map, len, pairs);
    else
        sbx_subs_publish(t->core, sb, SBX_TOPIC_TRACE, map, len, pairs);
    t->relayed++;
    sbx_stats.trace_events_relayed++;
}

/* The final event made here when the agent cannot send its own:
 * #{ts, pid, event => trace_end, detail => #{reason, events}}. */
static void publish_end(struct trace *t, const char *reason) {
    ei_x_buff m;
    ei_x_new(&m);
    ei_x_encode_map_header(&m, 4);
    ei_x_encode_atom(&m, "ts");
    ei_x_encode_longlong(&m, sbx_wall_ms());
    ei_x_encode_atom(&m, "pid");
    if (!t->has_agent || sbx_node_encode_rpid(t->core->node, &m, &t->agent) != 0)
        ei_x_encode_atom(&m, "undefined");
    ei_x_encode_atom(&m, "event");
    ei_x_encode_atom(&m, "trace_end");
    ei_x_encode_atom(&m, "detail");
    ei_x_encode_map_header(&m, 2);
    ei_x_encode_atom(&m, "reason");
    ei_x_encode_atom(&m, reason);
    ei_x_encode_atom(&m, "events");
    ei_x_encode_ulonglong(&m, t->relayed);
    publish(t, m.buff, (size_t)m.index, 1);
    ei_x_free(&m);
}

/* Calls *done(key, term) once and clears *done (no caller is answered twice). */
static void answer(sbx_trace_answer_fn *done, uint64_t key, const ei_x_buff *term) {
    sbx_trace_answer_fn fn = *done;
    *done = NULL;
    if (fn != NULL)
        fn(key, term->buff, (size_t)term->index);
}

/* Unlinks and frees t: pending remote calls cancelled, timer, demonitor, the sink
 * ended (unless already gone). Answers nobody: callers answer first. */
static void trace_free(struct trace *t) {
    struct sbx_node *node = t->core->node;
    for (struct trace **pp = &traces; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == t) {
            *pp = t->next;
            ntraces--;
            break;
        }
    }
    sbx_remote_cancel(node, remote_done, t->serial);
    sbx_remote_cancel(node, load_done, t->serial);
    if (t->timer != NULL)
        event_free(t->timer);
    if (t->sink != NULL) {
        if (t->mon_ref_len > 0)
            sink_monitor(t, 20);
        ei_x_buff r;
        ei_x_new(&r);
        ei_x_encode_atom(&r, "normal");
        sbx_node_proc_exit(node, t->sink, r.buff, (size_t)r.index);
        ei_x_free(&r);
    }
    ei_x_free(&t->args);
    free(t);
}

/* Ends a running (or stopping) trace: the final event when reason is set (the agent
 * sent none), the agent told to stop when tell, a waiting trace_stop answered ok. */
static void trace_end(struct trace *t, const char *reason, int tell) {
    ei_x_buff ok;
    SBX_INFO("trace ended", "id=%s reason=%s relayed=%llu", t->id,
             reason != NULL ? reason : "reported_by_agent", (unsigned long long)t->relayed);
    ei_x_new(&ok);
    ei_x_encode_atom(&ok, "ok");
    if (reason != NULL)
        publish_end(t, reason);
    if (tell)
        tell_agent_stop(t);
    answer(&t->stop_done, t->stop_key, &ok);
    ei_x_free(&ok);
    trace_free(t);
}

/* Ends a trace whose start did not succeed: the starter gets err (an encoded term). */
static void start_failed(struct trace *t, const ei_x_buff *err) {
    SBX_INFO("trace not started", "id=%s node=%s", t->id, t->target.node);
    answer(&t->start_done, t->start_key, err);
    trace_free(t);
}

/* {error, {backend, beam_node, Detail}} with a printed detail. */
static void start_failed_text(struct trace *t, const char *fmt, const char *a, const char *b) {
    char detail[512];
    ei_x_buff e;
    ei_x_new(&e);
    snprintf(detail, sizeof detail, fmt, a, b);
    ei_x_encode_tuple_header(&e, 2);
    ei_x_encode_atom(&e, "error");
    ei_x_encode_tuple_header(&e, 3);
    ei_x_encode_atom(&e, "backend");
    ei_x_encode_atom(&e, "beam_node");
    ei_x_encode_binary(&e, detail, (long)strlen(detail));
    start_failed(t, &e);
    ei_x_free(&e);
}

/* Timer: the agent overran its duration (or a stop) by STOP_GRACE_MS. Ending the sink
 * also ends the agent (it monitors the sink). */
static void on_timer(evutil_socket_t fd, short what, void *arg) {
    struct trace *t = by_serial((uint64_t)(uintptr_t)arg);
    (void)fd;
    (void)what;
    if (t != NULL)
        trace_end(t, t->state == T_STOPPING ? "stopped" : "timeout", 1);
}

/* (Re)arms t's timer for ms from now. */
static void arm_timer(struct trace *t, long ms) {
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (t->timer == NULL)
        t->timer = evtimer_new(t->core->base, on_timer, (void *)(uintptr_t)t->serial);
    if (t->timer != NULL)
        evtimer_add(t->timer, &tv);
}

/* Asks a running trace's agent to stop; the trace ends on its final message. */
static void begin_stop(struct trace *t) {
    t->state = T_STOPPING;
    tell_agent_stop(t);
    arm_timer(t, STOP_GRACE_MS);
}

/* Calls sbx_trace_agent:start(Map) on the node. 0 or -1. */
static int call_start(struct trace *t) {
    return sbx_remote_call(t->core->node, &t->target, AGENT, "start", t->args.buff,
                           (size_t)t->args.index, START_TIMEOUT_MS, remote_done, t->serial);
}

/* The agent answered {ok, Pid}: monitor it and tell the starter {ok, TraceRef}. Pid must
 * be on the traced node (code there could answer with a pid of any other node, which
 * sandboxd would then monitor and send stops to). */
static void agent_running(struct trace *t, const char *buf, int idx) {
    int is_local;
    uint32_t num, serial;
    ei_x_buff ok, mref;
    if (sbx_node_decode_pid(t->core->node, buf, &idx, &is_local, &num, &serial, &t->agent) != 0 ||
        is_local || t->agent.conn_id == 0 ||
        t->agent.conn_id != sbx_remote_conn_id(t->core->node, t->target.node)) {
        start_failed_text(t, "the trace agent answered %s%s", "no pid", "");
        return;
    }
    t->has_agent = 1;
    t->state = T_RUNNING;
    SBX_INFO("trace started", "id=%s node=%s max_events=%ld duration_ms=%ld", t->id,
             t->target.node, t->max_events, t->duration_ms);
    ei_x_new(&mref);
    sbx_node_make_ref(t->core->node, &mref);
    if ((size_t)mref.index <= sizeof t->mon_ref) {
        memcpy(t->mon_ref, mref.buff, (size_t)mref.index);
        t->mon_ref_len = (size_t)mref.index;
        sink_monitor(t, 19);
    }
    ei_x_free(&mref);
    arm_timer(t, t->duration_ms + STOP_GRACE_MS);
    if (t->abandoned) {
        begin_stop(t);
        return;
    }
    ei_x_new(&ok);
    ei_x_encode_tuple_header(&ok, 2);
    ei_x_encode_atom(&ok, "ok");
    ei_x_append_buf(&ok, t->ref, (int)t->ref_len);
    answer(&t->start_done, t->start_key, &ok);
    ei_x_free(&ok);
}

/* The agent answered {error, Why}: already_tracing and {badarg, Field} get the API's
 * shapes, agent_version loads ours (once), anything else is printed into a backend error. */
static void agent_refused(struct trace *t, const char *buf, int idx) {
    char atom[MAXATOMLEN_UTF8], printed[256];
    int at = idx, arity;
    int is_atom = sbx_decode_atom(buf, &at, atom) == 0;
    ei_x_buff e;
    if (is_atom && strcmp(atom, "already_tracing") == 0) {
        start_failed_text(t, "already tracing%s%s", "", "");
        return;
    }
    if (is_atom && !t->loaded && strcmp(atom, "agent_version") == 0) {
        /* An agent of another layout is loaded there (an older sandboxd): ours replaces it. */
        if (load_agent(t) != 0)
            start_failed_text(t, "cannot load the trace agent (%s missing from priv/)%s",
                              AGENT ".beam", "");
        return;
    }
    at = idx;
    if (ei_decode_tuple_header(buf, &at, &arity) == 0 && arity == 2 &&
        sbx_decode_atom(buf, &at, atom) == 0 && strcmp(atom, "badarg") == 0 &&
        sbx_decode_atom(buf, &at, atom) == 0) {
        ei_x_new(&e);
        ei_x_encode_tuple_header(&e, 2);
        ei_x_encode_atom(&e, "error");
        ei_x_encode_tuple_header(&e, 3);
        ei_x_encode_atom(&e, "badarg");
        ei_x_encode_atom(&e, atom);
        ei_x_encode_atom(&e, "invalid");
        start_failed(t, &e);
        ei_x_free(&e);
        return;
    }
    char *s = NULL;
    at = idx;
    if (ei_s_print_term(&s, buf, &at) < 0 || s == NULL)
        snprintf(printed, sizeof printed, "?");
    else
        snprintf(printed, sizeof printed, "%s", s);
    free(s);
    start_failed_text(t, "the trace agent refused: %s%s", printed, "");
}

/* Sends code:load_binary(sbx_trace_agent, "sbx_trace_agent.beam", Code) with the agent
 * from priv/. 0 or -1 (no file, no call). */
static int load_agent(struct trace *t) {
    char *code = NULL;
    size_t len = 0;
    int rc = -1;
    ei_x_buff a;
    ei_x_new(&a);
    if (sbx_beam_priv_file(AGENT ".beam", &code, &len) != 0)
        goto done;
    ei_x_encode_list_header(&a, 3);
    ei_x_encode_atom(&a, AGENT);
    ei_x_encode_string(&a, AGENT ".beam");
    ei_x_encode_binary(&a, code, (long)len);
    ei_x_encode_empty_list(&a);
    t->loaded = 1;
    rc = sbx_remote_call(t->core->node, &t->target, "code", "load_binary", a.buff,
                         (size_t)a.index, START_TIMEOUT_MS, load_done, t->serial);
done:
    free(code);
    ei_x_free(&a);
    return rc;
}

/* The answer to code:load_binary: {module, _} starts the agent again. */
static void load_done(uint64_t key, const struct sbx_remote_result *res) {
    struct trace *t = by_serial(key);
    int idx = 0, arity;
    char atom[MAXATOMLEN_UTF8];
    if (t == NULL)
        return;
    if (res->kind == SBX_REMOTE_VALUE && ei_decode_tuple_header(res->term, &idx, &arity) == 0 &&
        arity == 2 && sbx_decode_atom(res->term, &idx, atom) == 0 && strcmp(atom, "module") == 0) {
        if (call_start(t) != 0)
            start_failed_text(t, "cannot call the trace agent%s%s", "", "");
        return;
    }
    start_failed_text(t, "cannot load the trace agent into %s%s", t->target.node, "");
}

/* The answer to sbx_trace_agent:start/1. */
static void remote_done(uint64_t key, const struct sbx_remote_result *res) {
    struct trace *t = by_serial(key);
    int idx = 0, arity;
    char atom[MAXATOMLEN_UTF8];
    ei_x_buff e;
    if (t == NULL || t->state != T_STARTING)
        return;
    switch (res->kind) {
    case SBX_REMOTE_VALUE:
        if (ei_decode_tuple_header(res->term, &idx, &arity) == 0 && arity == 2 &&
            sbx_decode_atom(res->term, &idx, atom) == 0) {
            if (strcmp(atom, "ok") == 0) {
                agent_running(t, res->term, idx);
                return;
            }
            if (strcmp(atom, "error") == 0) {
                agent_refused(t, res->term, idx);
                return;
            }
        }
        start_failed_text(t, "the trace agent answered %s%s", "an unexpected value", "");
        return;
    case SBX_REMOTE_EXCEPTION:
        if (!t->loaded && strcmp(res->cls, "error") == 0 && sbx_decode_atom(res->term, &idx, atom) == 0 &&
            strcmp(atom, "undef") == 0) {
            if (load_agent(t) != 0)
                start_failed_text(t, "cannot load the trace agent (%s missing from priv/)%s",
                                  AGENT ".beam", "");
            return;
        }
        start_failed_text(t, "the trace agent raised %s%s", res->cls, "");
        return;
    case SBX_REMOTE_TIMEOUT:
        ei_x_new(&e);
        ei_x_encode_tuple_header(&e, 2);
        ei_x_encode_atom(&e, "error");
        ei_x_encode_atom(&e, "timeout");
        start_failed(t, &e);
        ei_x_free(&e);
        return;
    case SBX_REMOTE_NOCONNECTION:
        start_failed_text(t, "cannot reach %s: %s", t->target.node, res->why != NULL ? res->why : "");
        return;
    }
}

/* Sink: {sbx_trace, Ref, [Event]} relayed; {sbx_trace_done, Ref, Final} relayed and the
 * end; the 'DOWN' of the agent (it died without a final message) the end too. Anything
 * else (the traced node may send it anything) is ignored, and so are events beyond
 * max_events (code in the node could send batches in the agent's place). */
static void sink_message(struct sbx_proc *p, const struct sbx_rpid *from, const char *msg, size_t len) {
    struct trace *t = by_serial((uint64_t)(uintptr_t)p->data);
    int idx = 0, version, arity, n;
    char atom[MAXATOMLEN_UTF8];
    const char *ref;
    size_t ref_len;
    (void)from;
    (void)len;
    if (t == NULL || ei_decode_version(msg, &idx, &version) != 0 ||
        ei_decode_tuple_header(msg, &idx, &arity) != 0 || sbx_decode_atom(msg, &idx, atom) != 0)
        return;
    if (arity == 5 && strcmp(atom, "DOWN") == 0) {
        if (sbx_term_span(msg, &idx, &ref, &ref_len) == 0 && t->mon_ref_len > 0 &&
            sbx_ref_equal(ref, ref_len, t->mon_ref, t->mon_ref_len)) {
            t->mon_ref_len = 0;
            trace_end(t, "agent_down", 0);
        }
        return;
    }
    if (arity != 3 || sbx_term_span(msg, &idx, &ref, &ref_len) != 0 ||
        !sbx_ref_equal(ref, ref_len, t->ref, t->ref_len))
        return;
    if (strcmp(atom, "sbx_trace") == 0) {
        if (ei_decode_list_header(msg, &idx, &n) != 0)
            return;
        for (int i = 0; i < n && t->relayed < (uint64_t)t->max_events; i++) {
            const char *ev;
            size_t ev_len;
            if (sbx_term_span(msg, &idx, &ev, &ev_len) != 0)
                return;
            publish(t, ev, ev_len, 0);
        }
    } else if (strcmp(atom, "sbx_trace_done") == 0) {
        const char *ev;
        size_t ev_len;
        if (sbx_term_span(msg, &idx, &ev, &ev_len) == 0)
            publish(t, ev, ev_len, 1);
        t->mon_ref_len = 0; /* the agent is gone: nothing to demonitor */
        trace_end(t, NULL, 0);
    }
}

/* Sink: the agent's node went down (sandboxd's side of it). */
static void sink_conn_down(struct sbx_proc *p, uint64_t conn_id) {
    struct trace *t = by_serial((uint64_t)(uintptr_t)p->data);
    if (t != NULL && t->has_agent && t->agent.conn_id == conn_id) {
        t->mon_ref_len = 0;
        trace_end(t, "node_down", 0);
    }
}

/* Sink: killed from outside (the table frees it after this). */
static void sink_kill(struct sbx_proc *p) {
    struct trace *t = by_serial((uint64_t)(uintptr_t)p->data);
    ei_x_buff e;
    if (t == NULL)
        return;
    t->sink = NULL;
    if (t->state == T_STARTING) {
        ei_x_new(&e);
        ei_x_encode_tuple_header(&e, 2);
        ei_x_encode_atom(&e, "error");
        ei_x_encode_atom(&e, "killed");
        start_failed(t, &e);
        ei_x_free(&e);
        return;
    }
    trace_end(t, "killed", 0);
}

static const struct sbx_proc_ops sink_ops = {
    .message = sink_message,
    .kill = sink_kill,
    .conn_down = sink_conn_down,
};

/* See trace.h. *why is limit_reached, already_tracing or no_memory on -1. */
int sbx_trace_begin(struct sbx_core *core, const char *id, const struct sbx_beam_target *target,
                    const struct sbx_trace_spec *spec, uint64_t key, sbx_trace_answer_fn done,
                    const char **why) {
    struct trace *t = NULL;
    ei_x_buff ref, sink;
    ei_x_new(&ref);
    ei_x_new(&sink);
    int rc = -1;

    *why = "limit_reached";
    if (ntraces >= SBX_TRACE_MAX)
        goto done;
    *why = "already_tracing";
    for (struct trace *o = traces; o != NULL; o = o->next)
        if (strcmp(o->id, id) == 0)
            goto done;
    *why = "no_memory";
    t = calloc(1, sizeof *t);
    if (t == NULL)
        goto done;
    ei_x_new(&t->args);
    t->serial = next_serial++;
    t->core = core;
    snprintf(t->id, sizeof t->id, "%s", id);
    t->target = *target;
    t->duration_ms = spec->duration_ms;
    t->max_events = spec->max_events;
    t->start_key = key;
    t->start_done = done;
    sbx_node_make_ref(core->node, &ref);
    if ((size_t)ref.index > sizeof t->ref)
        goto done;
    memcpy(t->ref, ref.buff, (size_t)ref.index);
    t->ref_len = (size_t)ref.index;
    t->sink = sbx_proc_spawn(&core->node->procs, &sink_ops, (void *)(uintptr_t)t->serial);
    if (t->sink == NULL)
        goto done;
    /* The traced node is fenced: its agent may send batches to (and monitor) this sink. */
    if (sbx_proc_serve_peer(t->sink, target->node) != 0)
        goto done;
    sbx_node_encode_self_pid(core->node, &sink, t->sink);
    ei_x_encode_list_header(&t->args, 1);
    sbx_trace_spec_encode(spec, t->ref, t->ref_len, sink.buff, (size_t)sink.index, &t->args);
    ei_x_encode_empty_list(&t->args);
    t->next = traces;
    traces = t;
    ntraces++;
    if (call_start(t) != 0) {
        t->start_done = NULL;
        trace_free(t);
        t = NULL;
        goto done;
    }
    t = NULL;
    rc = 0;
done:
    if (t != NULL) {
        if (t->sink != NULL)
            sbx_proc_free(&core->node->procs, t->sink);
        ei_x_free(&t->args);
        free(t);
    }
    ei_x_free(&ref);
    ei_x_free(&sink);
    return rc;
}

/* See trace.h. */
void sbx_trace_abandon(uint64_t key) {
    for (struct trace *t = traces; t != NULL; t = t->next) {
        if (t->start_done != NULL && t->start_key == key) {
            t->start_done = NULL;
            t->abandoned = 1;
        }
        if (t->stop_done != NULL && t->stop_key == key)
            t->stop_done = NULL;
    }
}

/* See trace.h. A second trace_stop of a stopping trace answers ok at once. */
int sbx_trace_stop(struct sbx_core *core, const char *ref, size_t ref_len, uint64_t key,
                   sbx_trace_answer_fn done) {
    (void)core;
    for (struct trace *t = traces; t != NULL; t = t->next) {
        if (!sbx_ref_equal(t->ref, t->ref_len, ref, ref_len))
            continue;
        if (t->state != T_RUNNING)
            return 1;
        t->stop_key = key;
        t->stop_done = done;
        begin_stop(t);
        return 0;
    }
    return 1;
}

/* See trace.h. A trace still starting answers its starter {error, not_found}. */
void sbx_trace_sandbox_gone(struct sbx_core *core, const char *id) {
    struct trace *t = traces;
    (void)core;
    while (t != NULL) {
        struct trace *next = t->next;
        if (strcmp(t->id, id) == 0) {
            if (t->state == T_STARTING) {
                ei_x_buff e;
                ei_x_new(&e);
                ei_x_encode_tuple_header(&e, 2);
                ei_x_encode_atom(&e, "error");
                ei_x_encode_atom(&e, "not_found");
                start_failed(t, &e);
                ei_x_free(&e);
            } else {
                trace_end(t, "destroyed", 1);
            }
        }
        t = next;
    }
}

/* See trace.h. Answers nobody (the node is going away with its calls). */
void sbx_trace_free_all(struct sbx_core *core) {
    (void)core;
    while (traces != NULL) {
        traces->start_done = NULL;
        traces->stop_done = NULL;
        trace_free(traces);
    }
}
