/* The Docker engine connection: the requests in flight, API version negotiation, the
 * cached availability (probed at startup, re-probed every second while down), the
 * /events stream and the reconcile that follows every (re)connection. */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/dk.h"
#include "backends/docker/docker.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "dist/node.h"
#include "net/http.h"
#include "util/clock.h"
#include "util/log.h"

static struct dk_engine *the_engine;

static void probe_start(struct dk_engine *e);
static void reconcile(struct dk_engine *e);
static void probe_answered(struct dk_engine *e, int status, const char *body,
                           size_t len, const char *err);

/* See dk.h. Keeps at most DK_LINE_MAX bytes: a longer line is skipped up to its newline. */
void dk_lines_feed(struct dk_lines *l, const char *data, size_t len, dk_line_fn fn, void *arg) {
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(data + i, '\n', len - i);
        size_t n = nl != NULL ? (size_t)(nl - (data + i)) : len - i;
        if (l->skipping) {
            if (nl != NULL)
                l->skipping = 0;
        } else if (l->len == 0 && nl != NULL) {
            if (n > 0)
                fn(arg, data + i, n); /* whole line in place */
        } else if (l->len + n > DK_LINE_MAX) {
            l->len = 0;
            l->skipping = nl == NULL;
        } else {
            if (l->len + n > l->cap) {
                size_t cap = l->cap ? l->cap : 4096;
                while (cap < l->len + n)
                    cap *= 2;
                char *nb = realloc(l->buf, cap);
                if (nb == NULL) {
                    l->len = 0;
                    l->skipping = nl == NULL;
                    i += n + (nl != NULL);
                    continue;
                }
                l->buf = nb;
                l->cap = cap;
            }
            memcpy(l->buf + l->len, data + i, n);
            l->len += n;
            if (nl != NULL) {
                size_t whole = l->len;
                l->len = 0;
                fn(arg, l->buf, whole);
            }
        }
        i += n + (nl != NULL);
    }
}

/* See dk.h. Safe on a zeroed one. */
void dk_lines_free(struct dk_lines *l) {
    free(l->buf);
    memset(l, 0, sizeof *l);
}

/* The op with key, or NULL (cancelled or finished). */
static struct dk_op *op_find(struct dk_engine *e, uint64_t key) {
    for (struct dk_op *op = e->ops; op != NULL; op = op->next)
        if (op->key == key)
            return op;
    return NULL;
}

/* Unlinks op from the engine's list; frees nothing. */
static void op_unlink(struct dk_engine *e, struct dk_op *op) {
    if (op->prev != NULL)
        op->prev->next = op->next;
    else
        e->ops = op->next;
    if (op->next != NULL)
        op->next->prev = op->prev;
    op->next = op->prev = NULL;
}

/* net/http on_data: hands the piece to the op's owner (which may cancel anything). */
static void http_data(struct sbx_http *h, uint64_t key, const char *buf, size_t len) {
    struct dk_engine *e = sbx_http_user(h);
    struct dk_op *op = op_find(e, key);
    if (op != NULL && op->on_data != NULL)
        op->on_data(op, buf, len);
}

/* net/http on_done: the op leaves the list before its owner hears of it, and is freed
 * after; a connect error marks the engine suspect. */
static void http_done(struct sbx_http *h, uint64_t key, int status, const char *body, size_t len,
                      const char *err) {
    struct dk_engine *e = sbx_http_user(h);
    struct dk_op *op = op_find(e, key);
    if (op == NULL)
        return;
    op_unlink(e, op);
    op->on_done(op, status, body, len, err);
    free(op);
    if (status == 0 && err != NULL && the_engine == e && e->probe_op == NULL)
        dk_engine_suspect(e, err);
}

/* See dk.h. The op belongs to the engine; on_done runs exactly once unless cancelled. */
struct dk_op *dk_request(struct dk_engine *e, struct dk_state *ds, const char *method,
                         const char *path, int raw, const void *body, size_t body_len,
                         const char *ctype, long timeout_ms, size_t max_body,
                         dk_data_fn on_data, dk_done_fn on_done, void *arg) {
    char full[4096];
    const char *why = NULL;
    struct dk_op *op = NULL;
    if (e == NULL || e->http == NULL)
        goto err;
    if (raw)
        snprintf(full, sizeof full, "%s", path);
    else if (snprintf(full, sizeof full, "/v1.%d%s", e->minor, path) >= (int)sizeof full)
        goto err;
    op = calloc(1, sizeof *op);
    if (op == NULL)
        goto err;
    op->key = ++e->next_key;
    op->ds = ds;
    op->on_data = on_data;
    op->on_done = on_done;
    op->arg = arg;
    struct sbx_http_req req = {.method = method,
                               .path = full,
                               .body = body,
                               .body_len = body_len,
                               .content_type = ctype,
                               .timeout_ms = timeout_ms,
                               .max_body = max_body,
                               .on_data = on_data != NULL ? http_data : NULL,
                               .on_done = http_done,
                               .key = op->key};
    op->http_id = sbx_http_request(e->http, &req, &why);
    if (op->http_id == 0)
        goto err;
    op->next = e->ops;
    if (e->ops != NULL)
        e->ops->prev = op;
    e->ops = op;
    return op;
err:
    SBX_WARN("docker request not started", "path=%s why=\"%s\"", path, why ? why : "no engine");
    free(op);
    return NULL;
}

/* See dk.h. No callback of op runs after this; NULL is fine. Not for an op whose on_done
 * is running (it is no longer in the list then: nothing happens). */
void dk_cancel(struct dk_engine *e, struct dk_op *op) {
    if (op == NULL)
        return;
    for (struct dk_op *o = e->ops; o != NULL; o = o->next) {
        if (o == op) {
            sbx_http_cancel(e->http, op->http_id);
            op_unlink(e, op);
            free(op);
            return;
        }
    }
}

/* See dk.h. Every op of ds is cancelled and freed. */
void dk_cancel_all(struct dk_engine *e, struct dk_state *ds) {
    struct dk_op *op = e->ops, *next;
    for (; op != NULL; op = next) {
        next = op->next;
        if (op->ds == ds) {
            sbx_http_cancel(e->http, op->http_id);
            op_unlink(e, op);
            free(op);
        }
    }
}

/* See dk.h. Docker's {"message": ...} when the body has one, else the body itself; a
 * request without an answer is {unavailable, docker, Why}. */
void dk_set_http_err(struct sbx_err *err, int status, const char *body, const char *terr) {
    err->reason_atom = "backend";
    if (status == 0) {
        /* No answer from the engine (it went away under the request): unavailable. */
        if (terr == NULL || strncmp(terr, "too large:", 10) != 0)
            err->reason_atom = "unavailable";
        snprintf(err->detail, sizeof err->detail, "%s", terr != NULL ? terr : "no answer");
        return;
    }
    json_t *j = body != NULL ? json_loads(body, JSON_DECODE_ANY, NULL) : NULL;
    const char *msg = json_is_object(j) ? json_string_value(json_object_get(j, "message")) : NULL;
    if (msg == NULL)
        msg = body != NULL ? body : "";
    snprintf(err->detail, sizeof err->detail, "%d: %s", status, msg);
    size_t n = strlen(err->detail);
    while (n > 0 && (err->detail[n - 1] == '\n' || err->detail[n - 1] == '\r'))
        err->detail[--n] = '\0';
    json_decref(j);
}

/* See dk.h. Unreserved characters stay as they are. */
int dk_urlenc(const char *s, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t w = 0;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        if (w + (plain ? 1 : 3) >= cap)
            return -1;
        if (plain) {
            out[w++] = (char)c;
        } else {
            out[w++] = '%';
            out[w++] = hex[c >> 4];
            out[w++] = hex[c & 15];
        }
    }
    if (cap == 0)
        return -1;
    out[w] = '\0';
    return 0;
}

/* See dk.h. Docker names allow [a-zA-Z0-9][a-zA-Z0-9_.-]*. */
void dk_container_name(const struct sbx_sandbox *sb, char *out, size_t cap) {
    snprintf(out, cap, "sandboxd-%s-%s", sb->core->node->name, sb->id);
    for (char *p = out; *p != '\0'; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            *p = '_';
    }
}

/* See dk.h. */
int dk_engine_check_up(struct dk_engine *e, struct sbx_err *err) {
    if (e != NULL && e->up)
        return 1;
    err->reason_atom = "unavailable";
    snprintf(err->detail, sizeof err->detail, "%s", e != NULL ? e->why : "not started");
    return 0;
}

/* Marks the engine down with why; the probe timer runs every second until it is back. */
static void engine_down(struct dk_engine *e, const char *why) {
    if (e->up)
        SBX_WARN("docker engine unavailable", "why=\"%s\"", why);
    e->up = 0;
    snprintf(e->why, sizeof e->why, "%s", why);
    dk_cancel(e, e->events_op);
    e->events_op = NULL;
    dk_lines_free(&e->events_lines);
    struct timeval tv = {1, 0};
    if (e->probe_timer != NULL)
        evtimer_add(e->probe_timer, &tv);
}

/* See dk.h. A connect error means down at once; anything else gets a probe now. */
void dk_engine_suspect(struct dk_engine *e, const char *err) {
    if (e == NULL)
        return;
    if (strncmp(err, "connect:", 8) == 0) {
        if (e->up)
            engine_down(e, err);
        return;
    }
    if (e->up && e->probe_op == NULL)
        probe_start(e);
}

/* One /events line: a container of ours died, was killed by OOM, removed, paused or
 * unpaused. */
static void event_line(void *arg, const char *line, size_t len) {
    struct dk_engine *e = arg;
    json_t *j = json_loadb(line, len, 0, NULL);
    json_t *attrs = json_object_get(json_object_get(j, "Actor"), "Attributes");
    const char *action = json_string_value(json_object_get(j, "Action"));
    const char *id = json_string_value(json_object_get(attrs, "sandboxd.id"));
    const char *cid = json_string_value(json_object_get(json_object_get(j, "Actor"), "ID"));
    struct sbx_sandbox *sb = id != NULL ? sbx_sandbox_find(e->core, id) : NULL;
    struct dk_state *ds = sb != NULL && sb->backend == &sbx_backend_docker ? sb->bstate : NULL;
    if (action == NULL || ds == NULL || cid == NULL || strcmp(cid, ds->cid) != 0)
        goto done;
    if (strcmp(action, "oom") == 0) {
        ds->oom_seen = 1;
    } else if (strcmp(action, "destroy") == 0) {
        ds->gone = 1;
        dk_refresh(ds);
    } else if (strcmp(action, "die") == 0 || strcmp(action, "pause") == 0 ||
               strcmp(action, "unpause") == 0) {
        dk_refresh(ds); /* pause, unpause: maybe done outside sandboxd (dk_pause_inspected) */
    }
done:
    json_decref(j);
}

/* /events data: newline-delimited JSON. */
static void events_data(struct dk_op *op, const char *buf, size_t len) {
    struct dk_engine *e = op->arg;
    dk_lines_feed(&e->events_lines, buf, len, event_line, e);
}

/* /events ended (engine gone or restarted): look at the engine again. */
static void events_done(struct dk_op *op, int status, const char *body, size_t len,
                        const char *err) {
    struct dk_engine *e = op->arg;
    (void)body;
    (void)len;
    e->events_op = NULL;
    dk_lines_free(&e->events_lines);
    SBX_INFO("docker events stream ended", "status=%d err=\"%s\"", status, err ? err : "");
    if (status != 0 && e->up && e->probe_op == NULL)
        probe_start(e);
}

/* Opens the /events stream for our node's containers. */
static void events_open(struct dk_engine *e) {
    char filt[1024], enc[3200], path[3400];
    snprintf(filt, sizeof filt, "{\"type\":[\"container\"],\"label\":[\"sandboxd.node=%s\"]}",
             e->core->node->name);
    if (dk_urlenc(filt, enc, sizeof enc) != 0)
        return;
    snprintf(path, sizeof path, "/events?filters=%s", enc);
    e->events_opened_ms = sbx_mono_ms();
    e->events_op = dk_request(e, NULL, "GET", path, 0, NULL, 0, NULL, 0, 0, events_data,
                              events_done, e);
}

/* Starts that waited for the first probe go on (engine up) or fail (down); stops that
 * waited for it (adopted sandboxes) go on, unless the reconcile already ended them. */
static void resume_waiting(struct dk_engine *e) {
    struct sbx_sandbox *sb = e->core->first, *next;
    for (; sb != NULL; sb = next) {
        next = sb->next;
        struct dk_state *ds = sb->backend == &sbx_backend_docker ? sb->bstate : NULL;
        if (ds != NULL && ds->waiting_engine) {
            ds->waiting_engine = 0;
            dk_start_resume(ds); /* may report a failure; sb stays registered */
        } else if (ds != NULL && ds->stop_waiting_engine) {
            ds->stop_waiting_engine = 0;
            /* The end is reported from a later loop turn (engine down) or once the
             * engine answers: sb is not freed inside this call. */
            if (sb->stop_requested && sb->status == SBX_ST_STOPPING)
                dk_stop(sb, ds->stop_grace_ms);
        }
    }
}

/* /version answered: negotiate, then (coming up) events and reconcile. */
static void probe_done(struct dk_op *op, int status, const char *body, size_t len,
                       const char *err) {
    struct dk_engine *e = op->arg;
    probe_answered(e, status, body, len, err);
    resume_waiting(e);
}

/* The body of probe_done, before the starts waiting for it resume. */
static void probe_answered(struct dk_engine *e, int status, const char *body,
                           size_t len, const char *err) {
    json_t *j = NULL;
    int major = 0, minor = 0;
    e->probe_op = NULL;
    e->ever_probed = 1;
    if (status != 200) {
        char why[200];
        if (status == 0)
            snprintf(why, sizeof why, "%s", err != NULL ? err : "no answer");
        else
            snprintf(why, sizeof why, "GET /version answered %d", status);
        engine_down(e, why);
        return;
    }
    j = json_loadb(body, len, 0, NULL);
    const char *v = json_string_value(json_object_get(j, "ApiVersion"));
    if (v == NULL || sscanf(v, "%d.%d", &major, &minor) != 2 || major != 1 ||
        minor < DK_API_MIN_MINOR) {
        engine_down(e, "the engine's API version is older than 1.41");
        goto done;
    }
    e->minor = minor < DK_API_MAX_MINOR ? minor : DK_API_MAX_MINOR;
    if (!e->up) {
        e->up = 1;
        e->why[0] = '\0';
        SBX_INFO("docker engine available", "api=1.%d", e->minor);
        if (e->probe_timer != NULL)
            evtimer_del(e->probe_timer);
        events_open(e);
        reconcile(e);
    } else if (e->events_op == NULL && sbx_mono_ms() - e->events_opened_ms >= 1000) {
        /* Still up (the events stream had ended): dockerd restarted in between. */
        events_open(e);
        reconcile(e);
    } else if (e->events_op == NULL && e->probe_timer != NULL) {
        /* The stream ended again at once: try again in a second, not in a loop. */
        struct timeval tv = {1, 0};
        evtimer_add(e->probe_timer, &tv);
    }
done:
    json_decref(j);
}

/* GET /version (unversioned), 3 s at most. */
static void probe_start(struct dk_engine *e) {
    if (e->probe_op != NULL)
        return;
    e->probe_op = dk_request(e, NULL, "GET", "/version", 1, NULL, 0, NULL, 3000, 1 << 20, NULL,
                             probe_done, e);
}

/* Probe timer (every second while down). */
static void probe_timer_cb(evutil_socket_t fd, short what, void *arg) {
    struct dk_engine *e = arg;
    (void)fd;
    (void)what;
    if (!e->up) {
        struct timeval tv = {1, 0};
        evtimer_add(e->probe_timer, &tv);
    }
    probe_start(e);
}

/* An orphan's removal answered: nothing to do but log. */
static void orphan_done(struct dk_op *op, int status, const char *body, size_t len,
                        const char *err) {
    (void)body;
    (void)len;
    SBX_INFO("orphan container removed", "cid=%.12s status=%d err=\"%s\"", op->tag, status,
             err ? err : "");
}

/* The container list of our node: every docker sandbox is reconciled with its container,
 * containers no sandbox claims are removed. */
static void list_done(struct dk_op *op, int status, const char *body, size_t len,
                      const char *err) {
    struct dk_engine *e = op->arg;
    json_t *j = NULL;
    (void)err;
    if (status != 200)
        return;
    j = json_loadb(body, len, 0, NULL);
    if (!json_is_array(j))
        goto done;
    /* Orphans first. */
    size_t i;
    json_t *c;
    json_array_foreach(j, i, c) {
        const char *cid = json_string_value(json_object_get(c, "Id"));
        const char *id = json_string_value(json_object_get(json_object_get(c, "Labels"), "sandboxd.id"));
        if (cid == NULL || strlen(cid) >= DK_CID_MAX)
            continue;
        struct sbx_sandbox *sb = id != NULL ? sbx_sandbox_find(e->core, id) : NULL;
        struct dk_state *ds = sb != NULL && sb->backend == &sbx_backend_docker ? sb->bstate : NULL;
        int claimed = ds != NULL && (ds->cid[0] == '\0' || strcmp(ds->cid, cid) == 0);
        if (claimed)
            continue;
        char path[200];
        snprintf(path, sizeof path, "/containers/%s?v=1&force=1", cid);
        struct dk_op *rm = dk_request(e, NULL, "DELETE", path, 0, NULL, 0, NULL, 30000, 0, NULL,
                                      orphan_done, e);
        if (rm != NULL)
            snprintf(rm->tag, sizeof rm->tag, "%s", cid);
    }
    /* Then every docker sandbox, with the container the list shows for it (or none). */
    for (struct sbx_sandbox *sb = e->core->first; sb != NULL; sb = sb->next) {
        struct dk_state *ds = sb->backend == &sbx_backend_docker ? sb->bstate : NULL;
        if (ds == NULL || sb->destroying)
            continue;
        const char *found = NULL;
        json_array_foreach(j, i, c) {
            const char *cid = json_string_value(json_object_get(c, "Id"));
            const char *id =
                json_string_value(json_object_get(json_object_get(c, "Labels"), "sandboxd.id"));
            if (cid != NULL && id != NULL && strcmp(id, sb->id) == 0 && strlen(cid) < DK_CID_MAX &&
                (ds->cid[0] == '\0' || strcmp(ds->cid, cid) == 0))
                found = cid;
        }
        dk_reconcile_one(ds, found);
    }
done:
    json_decref(j);
}

/* Lists our node's containers, for list_done. */
static void reconcile(struct dk_engine *e) {
    char filt[600], enc[2000], path[2200];
    snprintf(filt, sizeof filt, "{\"label\":[\"sandboxd.node=%s\"]}", e->core->node->name);
    if (dk_urlenc(filt, enc, sizeof enc) != 0)
        return;
    snprintf(path, sizeof path, "/containers/json?all=1&filters=%s", enc);
    dk_request(e, NULL, "GET", path, 0, NULL, 0, NULL, 30000, 0, NULL, list_done, e);
}

/* See dk.h. The engine is made on first use; NULL only when out of memory or curl
 * cannot reach the endpoint kind (then docker stays unavailable). */
struct dk_engine *dk_engine(struct sbx_core *core) {
    struct sbx_http_endpoint ep;
    const char *why = NULL;
    if (the_engine != NULL)
        return the_engine;
    struct dk_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->core = core;
    e->minor = DK_API_MIN_MINOR;
    snprintf(e->why, sizeof e->why, "not probed yet");
    if (sbx_http_endpoint_from_env(&ep, &why) != 0) {
        snprintf(e->why, sizeof e->why, "DOCKER_HOST: %s", why);
    } else {
        e->http = sbx_http_new(core->base, &ep);
        if (e->http == NULL)
            snprintf(e->why, sizeof e->why, "cannot set up the HTTP client");
        else
            sbx_http_set_user(e->http, e);
    }
    e->probe_timer = evtimer_new(core->base, probe_timer_cb, e);
    the_engine = e;
    if (e->http != NULL)
        probe_start(e);
    return e;
}

/* See dk.h. The engine if it exists. */
struct dk_engine *dk_engine_peek(void) { return the_engine; }

/* See docker.h. Probes the engine now (reconcile follows once it answers). */
void sbx_docker_init(struct sbx_core *core) { (void)dk_engine(core); }

/* 1 while a container removal started by dk_remove_orphan is under way. */
static int removals_pending(const struct dk_engine *e) {
    for (const struct dk_op *op = e->ops; op != NULL; op = op->next)
        if (op->on_done == orphan_done)
            return 1;
    return 0;
}

/* See dk.h. Fire and forget: the engine removes cid (with its anonymous volumes). */
void dk_remove_orphan(struct dk_engine *e, const char *cid) {
    char path[200];
    if (e == NULL || !e->up || cid[0] == '\0')
        return;
    snprintf(path, sizeof path, "/containers/%s?v=1&force=1", cid);
    struct dk_op *rm = dk_request(e, NULL, "DELETE", path, 0, NULL, 0, NULL, 10000, 0, NULL,
                                  orphan_done, e);
    if (rm != NULL)
        snprintf(rm->tag, sizeof rm->tag, "%s", cid);
}

/* See docker.h. Removals of containers whose sandboxes were destroyed during the stop
 * (shutdown policy destroy) get up to 10 s of the loop; every other request is dropped
 * without callbacks. Sandboxes must already be released or detached. */
void sbx_docker_stop(struct sbx_core *core) {
    struct dk_engine *e = the_engine;
    if (e == NULL)
        return;
    dk_cancel(e, e->events_op);
    dk_cancel(e, e->probe_op);
    e->events_op = e->probe_op = NULL;
    int64_t deadline = sbx_mono_ms() + 10000;
    while (removals_pending(e) && sbx_mono_ms() < deadline)
        event_base_loop(core->base, EVLOOP_ONCE);
    the_engine = NULL;
    while (e->ops != NULL) {
        struct dk_op *op = e->ops;
        op_unlink(e, op);
        free(op);
    }
    sbx_http_free(e->http);
    dk_lines_free(&e->events_lines);
    if (e->probe_timer != NULL)
        event_free(e->probe_timer);
    free(e);
}

/* See docker.h. */
int sbx_docker_available(struct sbx_core *core, const char **why) {
    struct dk_engine *e = dk_engine(core);
    if (e != NULL && (e->up || (!e->ever_probed && e->probe_op != NULL)))
        return 1; /* before the first probe's answer, calls wait for it (dk_start) */
    *why = e != NULL ? e->why : "out of memory";
    return 0;
}
