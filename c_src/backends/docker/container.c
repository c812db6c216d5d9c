/* A sandbox's container: the create sequence (image check, pull, create, start), the
 * streams kept open while it runs (logs, wait; stats in stats.c), stop, the end as
 * learnt from inspect, remove, and reconcile after a (re)connection.
 *
 * Every step is a request whose op belongs to the sandbox (ds): release cancels them, so
 * no handler here runs for a freed sandbox. A handler that reports to the core
 * (sbx_sandbox_started / sbx_sandbox_ended) does it last: the sandbox may be gone after. */
#define _GNU_SOURCE
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/dk.h"
#include "core/core.h"
#include "core/logbuf.h"
#include "core/sandbox.h"
#include "core/subs.h"
#include "dist/node.h"
#include "util/clock.h"
#include "util/log.h"

#define CO_MAX ((size_t)64 << 10)
#define DRAIN_MS 2000
#define CO_DELAY_MS 5

static void step_create(struct dk_state *ds);
static void step_pull(struct dk_state *ds);
static void step_start(struct dk_state *ds);
static void ensure_streams(struct dk_state *ds);

/* Reports the end to the core: the sandbox may be freed on return. */
static void report_end(struct dk_state *ds) {
    struct sbx_sandbox *sb = ds->sb;
    struct sbx_exit ex = ds->end_exit;
    int oom = ds->end_oom;
    ds->phase = DK_IDLE;
    ds->end_pending = 0;
    ds->oom_seen = 0;
    ds->nports = 0;
    if (ds->end_timer != NULL)
        evtimer_del(ds->end_timer);
    sbx_sandbox_ended(sb, &ex, oom);
}

/* The logs stream of an ended container stayed silent for DRAIN_MS: report the end
 * without waiting for it to close. */
static void end_timer_cb(evutil_socket_t fd, short what, void *arg) {
    struct dk_state *ds = arg;
    (void)fd;
    (void)what;
    struct dk_engine *e = dk_engine_peek();
    if (e != NULL) {
        dk_cancel(e, ds->logs_op);
        ds->logs_op = NULL;
    }
    report_end(ds);
}

/* The container is no longer running: streams closed, the end reported once the logs
 * stream has drained (Docker closes it after the last line; a stream silent for DRAIN_MS
 * is given up). kind 0 = unknown exit. */
static void finish_end(struct dk_state *ds, int kind, int code, int oom) {
    struct dk_engine *e = dk_engine_peek();
    if (ds->phase != DK_RUNNING || ds->end_pending)
        return;
    dk_cancel(e, ds->wait_op);
    dk_cancel(e, ds->stats_op);
    ds->wait_op = ds->stats_op = NULL;
    ds->metrics.have = 0;
    dk_metrics_fail(ds);
    ds->end_exit.kind = kind;
    ds->end_exit.value = code;
    ds->end_oom = oom || ds->oom_seen;
    if (ds->logs_op != NULL) {
        struct timeval tv = {DRAIN_MS / 1000, (DRAIN_MS % 1000) * 1000};
        ds->end_pending = 1;
        if (ds->end_timer == NULL)
            ds->end_timer = evtimer_new(ds->sb->core->base, end_timer_cb, ds);
        if (ds->end_timer != NULL && evtimer_add(ds->end_timer, &tv) == 0)
            return;
        dk_cancel(e, ds->logs_op);
        ds->logs_op = NULL;
    }
    report_end(ds);
}

/* Sends what was gathered from the logs stream to the sandbox's output. */
static void co_flush(struct dk_state *ds) {
    if (ds->co_len > 0) {
        ds->logs_last_ms = sbx_wall_ms();
        sbx_sandbox_output(ds->sb, ds->co_stream, ds->coalesce, ds->co_len);
    }
    ds->co_len = 0;
    if (ds->co_timer != NULL)
        evtimer_del(ds->co_timer);
}

/* The gathering delay passed: out with what was gathered. */
static void co_timer_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    co_flush(arg);
}

/* One demultiplexed frame: gathered per stream, up to CO_MAX, so that a burst of short
 * lines makes few log events. */
static int logs_emit(void *arg, enum sbx_demux_stream stream, const char *data, size_t len) {
    struct dk_state *ds = arg;
    int s = stream == SBX_DEMUX_STDOUT ? SBX_STREAM_STDOUT : SBX_STREAM_STDERR;
    if (ds->co_len > 0 && (s != ds->co_stream || ds->co_len + len > CO_MAX))
        co_flush(ds);
    if (ds->coalesce == NULL)
        ds->coalesce = malloc(CO_MAX);
    if (len >= CO_MAX || ds->coalesce == NULL) {
        ds->logs_last_ms = sbx_wall_ms();
        sbx_sandbox_output(ds->sb, s, data, len);
        return 0;
    }
    ds->co_stream = s;
    memcpy(ds->coalesce + ds->co_len, data, len);
    ds->co_len += len;
    return 0;
}

/* Logs stream data: frames into the sandbox's output. */
static void logs_data(struct dk_op *op, const char *buf, size_t len) {
    struct dk_state *ds = op->ds;
    const char *why = NULL;
    if (ds->end_pending && ds->end_timer != NULL) {
        /* Still draining: the deadline counts from the last data. */
        struct timeval tv = {DRAIN_MS / 1000, (DRAIN_MS % 1000) * 1000};
        evtimer_add(ds->end_timer, &tv);
    }
    if (sbx_demux_feed(&ds->logs_demux, buf, len, logs_emit, ds, &why) < 0)
        SBX_WARN("docker logs stream refused", "id=%s why=\"%s\"", ds->sb->id, why ? why : "");
    /* Docker sends a line at a time: what arrives within CO_DELAY_MS goes out together. */
    if (ds->co_len > 0) {
        struct timeval tv = {0, CO_DELAY_MS * 1000};
        if (ds->co_timer == NULL)
            ds->co_timer = evtimer_new(ds->sb->core->base, co_timer_cb, ds);
        if (ds->co_timer == NULL)
            co_flush(ds);
        else if (!evtimer_pending(ds->co_timer, NULL))
            evtimer_add(ds->co_timer, &tv);
    }
}

/* The logs stream ended: the container stopped (or the engine went away). */
static void logs_done(struct dk_op *op, int status, const char *body, size_t len,
                      const char *err) {
    struct dk_state *ds = op->ds;
    (void)body;
    (void)len;
    (void)err;
    ds->logs_op = NULL;
    co_flush(ds);
    sbx_demux_release(&ds->logs_demux);
    sbx_demux_init(&ds->logs_demux, 0);
    if (ds->end_pending) {
        report_end(ds);
        return;
    }
    if (status != 0 && ds->phase == DK_RUNNING)
        dk_refresh(ds);
}

/* The wait stream answered: the container stopped; inspect says how. */
static void wait_done(struct dk_op *op, int status, const char *body, size_t len,
                      const char *err) {
    struct dk_state *ds = op->ds;
    (void)body;
    (void)len;
    (void)err;
    ds->wait_op = NULL;
    if (status != 0)
        dk_refresh(ds);
}

/* Opens what is missing of logs follow and wait for a running container. */
static void ensure_streams(struct dk_state *ds) {
    struct dk_engine *e = dk_engine_peek();
    char path[300];
    if (ds->logs_op == NULL) {
        char since[48] = "";
        if (ds->logs_since_ms > 0)
            snprintf(since, sizeof since, "&since=%lld.%03lld", (long long)(ds->logs_since_ms / 1000),
                     (long long)(ds->logs_since_ms % 1000));
        snprintf(path, sizeof path, "/containers/%s/logs?follow=1&stdout=1&stderr=1&timestamps=0%s",
                 ds->cid, since);
        sbx_demux_release(&ds->logs_demux);
        sbx_demux_init(&ds->logs_demux, 0);
        ds->logs_op = dk_request(e, ds, "GET", path, 0, NULL, 0, NULL, 0, 0, logs_data,
                                 logs_done, NULL);
    }
    if (ds->wait_op == NULL) {
        snprintf(path, sizeof path, "/containers/%s/wait?condition=not-running", ds->cid);
        ds->wait_op = dk_request(e, ds, "POST", path, 0, NULL, 0, NULL, 0, 0, NULL, wait_done, NULL);
    }
    dk_stats_open(ds);
}

/* Inspect answered: running (streams re-opened), ended, or gone. */
static void inspect_done(struct dk_op *op, int status, const char *body, size_t len,
                         const char *err) {
    struct dk_state *ds = op->ds;
    json_t *j = NULL;
    (void)err;
    ds->inspect_op = NULL;
    if (ds->phase == DK_CREATING)
        return;
    if (status == 404) {
        ds->gone = 1;
        ds->cid[0] = '\0';
        if (ds->phase == DK_RUNNING)
            finish_end(ds, 0, 0, 0);
        return;
    }
    if (status != 200)
        return;
    j = json_loadb(body, len, 0, NULL);
    json_t *st = json_object_get(j, "State");
    if (!json_is_object(st))
        goto done;
    if (json_is_true(json_object_get(st, "Running"))) {
        dk_pause_inspected(ds, st, (unsigned)op->u64);
        if (ds->phase == DK_RUNNING) {
            ds->nports = dk_ports_parse(body, len, ds->ports, DK_PORTS_MAX);
            dk_ip_parse(body, len, ds->ip, sizeof ds->ip);
            ensure_streams(ds);
        }
        if (ds->inspect_again) {
            ds->inspect_again = 0;
            dk_refresh(ds);
        }
        goto done;
    }
    json_t *code = json_object_get(st, "ExitCode");
    int oom = json_is_true(json_object_get(st, "OOMKilled"));
    int kind = json_is_integer(code) ? 1 : 0;
    int value = kind ? (int)json_integer_value(code) : 0;
    json_decref(j);
    ds->inspect_again = 0;
    if (ds->phase == DK_RUNNING)
        finish_end(ds, kind, value, oom); /* may free the sandbox */
    return;
done:
    json_decref(j);
}

/* See dk.h. Inspects the container (one request at a time) and acts on what it says. */
void dk_refresh(struct dk_state *ds) {
    struct dk_engine *e = dk_engine_peek();
    char path[200];
    if (ds->inspect_op != NULL) {
        ds->inspect_again = 1;
        return;
    }
    if (ds->cid[0] == '\0') {
        if (ds->phase == DK_RUNNING)
            finish_end(ds, 0, 0, 0);
        return;
    }
    snprintf(path, sizeof path, "/containers/%s/json", ds->cid);
    ds->inspect_op = dk_request(e, ds, "GET", path, 0, NULL, 0, NULL, 15000, 0, NULL,
                                inspect_done, NULL);
    if (ds->inspect_op != NULL)
        ds->inspect_op->u64 = ds->pause_seq; /* see dk_pause_inspected */
}

/* See dk.h. cid: the container the list shows for this sandbox, or NULL. */
void dk_reconcile_one(struct dk_state *ds, const char *cid) {
    if (ds->phase == DK_CREATING)
        return;
    /* Adopted tentatively, but journalled as not running: nothing to end. */
    if (ds->phase == DK_RUNNING && ds->sb->status != SBX_ST_RUNNING &&
        ds->sb->status != SBX_ST_STOPPING && ds->sb->status != SBX_ST_PAUSED)
        ds->phase = DK_IDLE;
    if (cid == NULL) {
        ds->gone = 1;
        ds->cid[0] = '\0';
        if (ds->phase == DK_RUNNING)
            finish_end(ds, 0, 0, 0);
        return;
    }
    if (ds->cid[0] == '\0')
        snprintf(ds->cid, sizeof ds->cid, "%s", cid);
    /* Streams that died with the engine are opened again after inspect, the logs from
     * the last output received; a stream still open is kept (nothing skipped). */
    if (ds->logs_op == NULL && ds->logs_last_ms > 0)
        ds->logs_since_ms = ds->logs_last_ms;
    dk_refresh(ds);
}

/* The start sequence failed: undone; the core hears of it. */
static void start_failed(struct dk_state *ds) {
    struct sbx_sandbox *sb = ds->sb;
    struct sbx_err err = ds->fail_err;
    ds->phase = DK_IDLE;
    ds->step = NULL;
    if (ds->stop_asked) {
        struct sbx_exit none = {0, 0};
        ds->stop_asked = 0;
        sbx_sandbox_ended(sb, &none, 0);
        return;
    }
    sbx_sandbox_started(sb, &err);
}

/* The container made by a failed start is removed: now report. */
static void undo_done(struct dk_op *op, int status, const char *body, size_t len,
                      const char *err) {
    struct dk_state *ds = op->ds;
    (void)status;
    (void)body;
    (void)len;
    (void)err;
    ds->cid[0] = '\0';
    ds->made_now = 0;
    start_failed(ds);
}

/* Fails the start with err: removes the container this start made, then reports. */
static void fail(struct dk_state *ds, const struct sbx_err *err) {
    struct dk_engine *e = dk_engine_peek();
    if (err != NULL)
        ds->fail_err = *err;
    SBX_WARN("docker start failed", "id=%s detail=\"%s\"", ds->sb->id, ds->fail_err.detail);
    if (ds->cid[0] != '\0' && ds->made_now) {
        char path[200];
        snprintf(path, sizeof path, "/containers/%s?v=1&force=1", ds->cid);
        ds->step_kind = DK_STEP_UNDO;
        ds->step = dk_request(e, ds, "DELETE", path, 0, NULL, 0, NULL, 30000, 0, NULL, undo_done,
                              NULL);
        if (ds->step != NULL)
            return;
        ds->cid[0] = '\0';
    }
    start_failed(ds);
}

/* The step's answer: a stop was asked meanwhile (undo everything), or an error. 1 if the
 * caller must return. */
static int step_check(struct dk_state *ds, int status, int ok, const char *body,
                      const char *terr) {
    ds->step = NULL;
    if (ds->stop_asked && !ds->made_now && ds->cid[0] != '\0') {
        /* Stop asked while an existing container was being started again: it may run
         * now, so stop it the usual way (its end is then reported as stopped). */
        ds->stop_asked = 0;
        ds->phase = DK_RUNNING;
        dk_stop(ds->sb, 0);
        return 1;
    }
    if (ds->stop_asked) {
        ds->fail_err.reason_atom = "backend";
        snprintf(ds->fail_err.detail, sizeof ds->fail_err.detail, "stopped while starting");
        fail(ds, NULL);
        return 1;
    }
    if (!ok) {
        struct sbx_err err;
        memset(&err, 0, sizeof err);
        dk_set_http_err(&err, status, body, terr);
        fail(ds, &err);
        return 1;
    }
    return 0;
}

/* The container runs: streams opened, the core told. */
static void running(struct dk_state *ds) {
    ds->phase = DK_RUNNING;
    ds->gone = 0;
    ds->made_now = 0;
    ensure_streams(ds);
    sbx_sandbox_started(ds->sb, NULL);
}

/* Inspect after start answered: the published ports. */
static void ports_done(struct dk_op *op, int status, const char *body, size_t len,
                       const char *err) {
    struct dk_state *ds = op->ds;
    if (step_check(ds, status, status == 200, body, err))
        return;
    ds->nports = dk_ports_parse(body, len, ds->ports, DK_PORTS_MAX);
    dk_ip_parse(body, len, ds->ip, sizeof ds->ip);
    running(ds);
}

/* POST start answered: running. */
static void start_done(struct dk_op *op, int status, const char *body, size_t len,
                       const char *err) {
    struct dk_state *ds = op->ds;
    (void)len;
    if (step_check(ds, status, status == 204 || status == 304, body, err))
        return;
    enum sbx_hc_type hc = ds->sb->cfg.health.type;
    ds->ip[0] = '\0';
    if (ds->sb->cfg.nports > 0 || hc == SBX_HC_TCP || hc == SBX_HC_HTTP) {
        /* The ports Docker chose (host 0) and the address health probes go to are known
         * from inspect. */
        char path[200];
        snprintf(path, sizeof path, "/containers/%s/json", ds->cid);
        ds->step = dk_request(dk_engine_peek(), ds, "GET", path, 0, NULL, 0, NULL, 15000, 0, NULL,
                              ports_done, NULL);
        if (ds->step != NULL)
            return;
    }
    running(ds);
}

/* Starts the container. */
static void step_start(struct dk_state *ds) {
    char path[200];
    snprintf(path, sizeof path, "/containers/%s/start", ds->cid);
    ds->step_kind = DK_STEP_START;
    ds->step = dk_request(dk_engine_peek(), ds, "POST", path, 0, NULL, 0, NULL, 60000, 0, NULL,
                          start_done, NULL);
    if (ds->step == NULL) {
        struct sbx_err err = {.reason_atom = "backend", .detail = "cannot send the start request"};
        fail(ds, &err);
    }
}

/* The stale container that held our name is gone: create again. */
static void stale_done(struct dk_op *op, int status, const char *body, size_t len,
                       const char *err) {
    struct dk_state *ds = op->ds;
    (void)len;
    if (step_check(ds, status, status == 204 || status == 404, body, err))
        return;
    step_create(ds);
}

/* POST create answered: the container id. A name conflict means a container of an
 * earlier sandbox with this id on this node (destroyed while the engine was down, or
 * made just before sandboxd was killed): it is removed, once, and create runs again. */
static void create_done(struct dk_op *op, int status, const char *body, size_t len,
                        const char *err) {
    struct dk_state *ds = op->ds;
    if (status == 404 && ds->sb->cfg.pull == SBX_PULL_IF_MISSING && !ds->pulled &&
        !ds->stop_asked && body != NULL && strstr(body, "No such image") != NULL) {
        /* if_missing: the create said the image is missing; pull it, then create again. */
        ds->step = NULL;
        step_pull(ds);
        return;
    }
    if (status == 409 && !ds->conflict_retried && !ds->stop_asked) {
        char name[300], path[400];
        ds->conflict_retried = 1;
        dk_container_name(ds->sb, name, sizeof name);
        snprintf(path, sizeof path, "/containers/%s?v=1&force=1", name);
        SBX_WARN("removing a stale container with our name", "id=%s name=%s", ds->sb->id, name);
        ds->step = dk_request(dk_engine_peek(), ds, "DELETE", path, 0, NULL, 0, NULL, 30000, 0,
                              NULL, stale_done, NULL);
        if (ds->step != NULL)
            return;
    }
    json_t *j = status == 201 ? json_loadb(body, len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(j, "Id"));
    if (status == 201 && (id == NULL || strlen(id) >= DK_CID_MAX || strlen(id) < 12)) {
        json_decref(j);
        ds->step = NULL;
        struct sbx_err e2 = {.reason_atom = "backend", .detail = "201: no container id"};
        fail(ds, &e2);
        return;
    }
    if (id != NULL) {
        snprintf(ds->cid, sizeof ds->cid, "%s", id);
        ds->made_now = 1;
    }
    json_decref(j);
    if (step_check(ds, status, status == 201, body, err))
        return;
    ds->logs_since_ms = 0;
    ds->logs_last_ms = 0;
    sbx_sandbox_journal(ds->sb); /* the container id, for adoption */
    step_start(ds);
}

/* Creates the container. */
static void step_create(struct dk_state *ds) {
    struct sbx_sandbox *sb = ds->sb;
    struct dk_create_spec spec = {.cfg = &sb->cfg, .id = sb->id, .node = sb->core->node->name,
                                  .workspace = sb->workspace};
    char name[300], path[400];
    json_t *body = dk_create_body(&spec);
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (text == NULL) {
        struct sbx_err err = {.reason_atom = "backend",
                              .detail = "the config does not make a container (strings must be UTF-8)"};
        fail(ds, &err);
        return;
    }
    dk_container_name(sb, name, sizeof name);
    snprintf(path, sizeof path, "/containers/create?name=%s", name);
    ds->step_kind = DK_STEP_CREATE;
    ds->step = dk_request(dk_engine_peek(), ds, "POST", path, 0, text, strlen(text), NULL, 60000,
                          0, NULL, create_done, NULL);
    free(text);
    if (ds->step == NULL) {
        struct sbx_err err = {.reason_atom = "backend", .detail = "cannot send the create request"};
        fail(ds, &err);
    }
}

/* One line of pull progress: errors kept, progress published (at most every 250 ms). */
static void pull_line(void *arg, const char *line, size_t len) {
    struct dk_state *ds = arg;
    json_t *j = json_loadb(line, len, 0, NULL);
    const char *error = json_string_value(json_object_get(j, "error"));
    const char *status = json_string_value(json_object_get(j, "status"));
    const char *id = json_string_value(json_object_get(j, "id"));
    json_t *pd = json_object_get(j, "progressDetail");
    if (error != NULL)
        snprintf(ds->pull_error, sizeof ds->pull_error, "%s", error);
    int64_t now = sbx_mono_ms();
    if (status != NULL && now - ds->pull_last_ms >= 250 &&
        sbx_subs_wanted(ds->sb->core, ds->sb, SBX_TOPIC_STATUS)) {
        ds->pull_last_ms = now;
        ei_x_buff p;
        ei_x_new(&p);
        ei_x_encode_map_header(&p, 4);
        ei_x_encode_atom(&p, "from");
        ei_x_encode_atom(&p, "starting");
        ei_x_encode_atom(&p, "to");
        ei_x_encode_atom(&p, "starting");
        ei_x_encode_atom(&p, "ts");
        ei_x_encode_longlong(&p, sbx_wall_ms());
        ei_x_encode_atom(&p, "reason");
        ei_x_encode_tuple_header(&p, 2);
        ei_x_encode_atom(&p, "pull");
        ei_x_encode_map_header(&p, 4);
        ei_x_encode_atom(&p, "status");
        ei_x_encode_binary(&p, status, (int)strnlen(status, 1000));
        ei_x_encode_atom(&p, "id");
        ei_x_encode_binary(&p, id ? id : "", id ? (int)strnlen(id, 200) : 0);
        json_t *cur = json_object_get(pd, "current"), *tot = json_object_get(pd, "total");
        ei_x_encode_atom(&p, "current");
        ei_x_encode_longlong(&p, json_is_integer(cur) ? json_integer_value(cur) : 0);
        ei_x_encode_atom(&p, "total");
        ei_x_encode_longlong(&p, json_is_integer(tot) ? json_integer_value(tot) : 0);
        sbx_subs_publish(ds->sb->core, ds->sb, SBX_TOPIC_STATUS, p.buff, (size_t)p.index, 4);
        ei_x_free(&p);
    }
    json_decref(j);
}

/* Pull progress stream. */
static void pull_data(struct dk_op *op, const char *buf, size_t len) {
    dk_lines_feed(&op->ds->pull_lines, buf, len, pull_line, op->ds);
}

/* The pull ended: an error line in the stream fails it too. */
static void pull_done(struct dk_op *op, int status, const char *body, size_t len,
                      const char *err) {
    struct dk_state *ds = op->ds;
    (void)len;
    dk_lines_free(&ds->pull_lines);
    if (status == 200 && ds->pull_error[0] != '\0') {
        ds->step = NULL;
        struct sbx_err e2 = {.reason_atom = "backend"};
        snprintf(e2.detail, sizeof e2.detail, "pull: %s", ds->pull_error);
        if (!ds->stop_asked) {
            fail(ds, &e2);
            return;
        }
    }
    if (step_check(ds, status, status == 200, body, err))
        return;
    ds->pulled = 1;
    step_create(ds);
}

/* Pulls the image (fromImage + tag). */
static void step_pull(struct dk_state *ds) {
    char name[600], tag[200], en[1800], et[600], path[2600];
    dk_image_split(ds->sb->cfg.image, name, sizeof name, tag, sizeof tag);
    if (dk_urlenc(name, en, sizeof en) != 0 || dk_urlenc(tag, et, sizeof et) != 0) {
        struct sbx_err err = {.reason_atom = "backend", .detail = "image name too long"};
        fail(ds, &err);
        return;
    }
    snprintf(path, sizeof path, "/images/create?fromImage=%s%s%s", en, tag[0] ? "&tag=" : "", et);
    ds->pull_error[0] = '\0';
    ds->pull_last_ms = 0;
    ds->step_kind = DK_STEP_PULL;
    ds->step = dk_request(dk_engine_peek(), ds, "POST", path, 0, NULL, 0, NULL, 0, 0, pull_data,
                          pull_done, NULL);
    if (ds->step == NULL) {
        struct sbx_err err = {.reason_atom = "backend", .detail = "cannot send the pull request"};
        fail(ds, &err);
    }
}

/* A zeroed state for sb (NULL when out of memory). */
static struct dk_state *state_for(struct sbx_sandbox *sb) {
    struct dk_state *ds = sb->bstate;
    if (ds != NULL)
        return ds;
    ds = calloc(1, sizeof *ds);
    if (ds == NULL)
        return NULL;
    ds->sb = sb;
    sbx_demux_init(&ds->logs_demux, 0);
    sb->bstate = ds;
    return ds;
}

/* See dk.h. The first step of a start, once the engine is known to be up (or its
 * failure, reported to the core, when it is not). */
void dk_start_resume(struct dk_state *ds) {
    struct sbx_sandbox *sb = ds->sb;
    struct sbx_err err;
    memset(&err, 0, sizeof err);
    if (!dk_engine_check_up(dk_engine_peek(), &err)) {
        ds->fail_err = err;
        start_failed(ds);
        return;
    }
    if (ds->cid[0] != '\0' && !ds->gone) {
        ds->logs_since_ms = sbx_wall_ms();
        step_start(ds);
    } else {
        ds->cid[0] = '\0';
        ds->gone = 0;
        /* pull always pulls first; otherwise create at once, and a create answering "No
         * such image" pulls (if_missing) or fails with Docker's 404 (never). */
        if (sb->cfg.pull == SBX_PULL_ALWAYS)
            step_pull(ds);
        else
            step_create(ds);
    }
}

/* See dk.h (backend start): always SBX_START_PENDING unless the engine is down. Before
 * the engine's first answer the start waits for it (resumed from engine.c). */
int dk_start(struct sbx_sandbox *sb, struct sbx_err *err) {
    struct dk_engine *e = dk_engine(sb->core);
    int wait = e != NULL && !e->up && !e->ever_probed && e->probe_op != NULL;
    if (!wait && !dk_engine_check_up(e, err))
        return -1;
    struct dk_state *ds = state_for(sb);
    if (ds == NULL) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "out of memory");
        return -1;
    }
    ds->phase = DK_CREATING;
    ds->stop_asked = 0;
    ds->conflict_retried = 0;
    ds->pulled = 0;
    ds->made_now = 0;
    ds->oom_seen = 0;
    ds->step_kind = 0;
    memset(&ds->fail_err, 0, sizeof ds->fail_err);
    if (wait)
        ds->waiting_engine = 1;
    else
        dk_start_resume(ds);
    return SBX_START_PENDING;
}

/* POST stop answered: inspect for the end. */
static void stop_done(struct dk_op *op, int status, const char *body, size_t len,
                      const char *err) {
    (void)status;
    (void)body;
    (void)len;
    (void)err;
    dk_refresh(op->ds);
}

/* Reports an unknown end from the loop's next turn, never inside the stop that asked
 * (the core may free the sandbox right after stop returns). */
static void end_soon(struct dk_state *ds) {
    struct timeval tv = {0, 0};
    ds->end_exit.kind = 0;
    ds->end_exit.value = 0;
    ds->end_oom = 0;
    ds->end_pending = 1;
    if (ds->end_timer == NULL)
        ds->end_timer = evtimer_new(ds->sb->core->base, end_timer_cb, ds);
    if (ds->end_timer == NULL || evtimer_add(ds->end_timer, &tv) != 0)
        report_end(ds); /* out of memory: now rather than never */
}

/* See dk.h (backend stop). Engine down or nothing made yet: ended on the next loop
 * turn (a container left is an orphan for the next reconcile). */
void dk_stop(struct sbx_sandbox *sb, int grace_ms) {
    struct dk_state *ds = sb->bstate;
    struct dk_engine *e = dk_engine_peek();
    struct sbx_exit none = {0, 0};
    if (ds == NULL || ds->phase == DK_IDLE) {
        sbx_sandbox_ended(sb, &none, 0); /* not alive: the core allows it here */
        return;
    }
    if (ds->end_pending)
        return;
    if (e != NULL && !e->up && !e->ever_probed && e->probe_op != NULL &&
        ds->phase != DK_CREATING) {
        /* Adopted, and the engine has not answered yet (sandboxd just started): the
         * stop waits for that answer (engine.c resume_waiting), so that a destroy right
         * after a restart removes the container instead of leaving it as an orphan. */
        ds->stop_waiting_engine = 1;
        ds->stop_grace_ms = grace_ms;
        return;
    }
    if (e == NULL || !e->up) {
        if (ds->phase == DK_CREATING) {
            dk_cancel(e, ds->step);
            ds->step = NULL;
            ds->waiting_engine = 0;
        }
        end_soon(ds);
        return;
    }
    if (ds->phase == DK_CREATING) {
        ds->waiting_engine = 0;
        if (ds->cid[0] == '\0' && ds->step_kind != DK_STEP_CREATE) {
            /* Nothing made yet: drop the request (a pull stops with it). */
            dk_cancel(e, ds->step);
            ds->step = NULL;
            end_soon(ds);
            return;
        }
        ds->stop_asked = 1;
        return;
    }
    char path[200];
    int t = grace_ms / 1000;
    snprintf(path, sizeof path, "/containers/%s/stop?t=%d", ds->cid, t);
    if (dk_request(e, ds, "POST", path, 0, NULL, 0, NULL, (long)t * 1000 + 30000, 0, NULL,
                   stop_done, NULL) == NULL)
        dk_refresh(ds);
}

/* DELETE answered: destroy goes on. */
static void remove_done(struct dk_op *op, int status, const char *body, size_t len,
                        const char *err) {
    struct dk_state *ds = op->ds;
    void (*done)(struct sbx_sandbox *) = ds->remove_done;
    (void)body;
    (void)len;
    (void)err;
    if (status != 204 && status != 404)
        SBX_WARN("container not removed", "id=%s status=%d", ds->sb->id, status);
    ds->cid[0] = '\0';
    ds->remove_done = NULL;
    done(ds->sb);
}

/* See dk.h (backend remove). Engine down or no container: done at once (a container
 * left is an orphan for the next reconcile). */
void dk_remove(struct sbx_sandbox *sb, void (*done)(struct sbx_sandbox *sb)) {
    struct dk_state *ds = sb->bstate;
    struct dk_engine *e = dk_engine_peek();
    char path[200];
    if (ds == NULL || ds->cid[0] == '\0' || e == NULL || !e->up) {
        done(sb);
        return;
    }
    snprintf(path, sizeof path, "/containers/%s?v=1&force=1", ds->cid);
    ds->remove_done = done;
    if (dk_request(e, ds, "DELETE", path, 0, NULL, 0, NULL, 30000, 0, NULL, remove_done, NULL) ==
        NULL) {
        ds->remove_done = NULL;
        done(sb);
    }
}

/* See dk.h. Frees the container part of ds (requests already cancelled). */
void dk_container_free(struct dk_state *ds) {
    sbx_demux_release(&ds->logs_demux);
    dk_lines_free(&ds->pull_lines);
    dk_lines_free(&ds->stats_lines);
    free(ds->coalesce);
    ds->coalesce = NULL;
    if (ds->co_timer != NULL)
        event_free(ds->co_timer);
    ds->co_timer = NULL;
    if (ds->end_timer != NULL)
        event_free(ds->end_timer);
    ds->end_timer = NULL;
}
