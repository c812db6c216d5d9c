/* Health probes: tcp (connect), http (GET, status line), exec (exit code 0), each
 * retried every interval_ms until timeout_ms. One probe at a time per sandbox. Every
 * attempt has a hard deadline (what is left of timeout_ms, at most 2 s) whatever the peer
 * does, and an http attempt reads at most SBX_HEALTH_HTTP_MAX bytes for its status line. A sandbox
 * with no health_check whose container hosts a BEAM node (docker's `beam`) is probed by
 * calling erlang:node() in that node (rpc/remote.h) until it answers, within
 * SBX_HEALTH_BEAM_MS. */
#define _GNU_SOURCE
#include "core/health.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/sandbox.h"
#include "rpc/remote.h"
#include "util/clock.h"

struct health {
    struct health *next;
    struct sbx_sandbox *sb;
    uint64_t key;
    sbx_health_fn done;
    int64_t deadline;
    struct event *timer;
    struct event *attempt_timer; /* the hard deadline of a tcp or http attempt */
    struct bufferevent *bev;
    int exec_running;
    int remote_running;   /* a beam probe's remote call is under way */
    int beam;             /* probing the BEAM node (no health_check given) */
    int interval_ms;
};

static struct health *probes;

static void beam_done(uint64_t key, const struct sbx_remote_result *res);

/* The probe under way for sb, or NULL: at most one per sandbox. */
static struct health *find(struct sbx_sandbox *sb) {
    for (struct health *h = probes; h != NULL; h = h->next)
        if (h->sb == sb)
            return h;
    return NULL;
}

/* Takes h off the probe list and frees it, cancelling its connection,
 * timer and exec (whose done then never runs). Tells no one. */
static void unlink_free(struct health *h) {
    for (struct health **pp = &probes; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    if (h->bev != NULL)
        bufferevent_free(h->bev);
    if (h->timer != NULL)
        event_free(h->timer);
    if (h->attempt_timer != NULL)
        event_free(h->attempt_timer);
    if (h->exec_running && h->sb->backend->exec_cancel != NULL)
        h->sb->backend->exec_cancel(h->sb, (uint64_t)(uintptr_t)h);
    if (h->remote_running)
        sbx_remote_cancel(h->sb->core->node, beam_done, (uint64_t)(uintptr_t)h);
    free(h);
}

/* Ends the probe and tells its owner, once. h is freed before
 * done runs, so done may start or cancel probes. */
static void finish(struct health *h, int healthy) {
    struct sbx_sandbox *sb = h->sb;
    uint64_t key = h->key;
    sbx_health_fn done = h->done;
    unlink_free(h);
    done(sb, key, healthy);
}

/* After a failed attempt: the next one in interval_ms, or, past the
 * deadline or once sb is not running, finish unhealthy (h is freed). */
static void schedule(struct health *h) {
    if (h->bev != NULL) {
        bufferevent_free(h->bev);
        h->bev = NULL;
    }
    event_del(h->attempt_timer);
    /* Paused: no verdict while frozen; the deadline applies again once it runs. */
    if (h->sb->status != SBX_ST_PAUSED &&
        (sbx_mono_ms() >= h->deadline || h->sb->status != SBX_ST_RUNNING)) {
        finish(h, 0);
        return;
    }
    struct timeval tv = {h->interval_ms / 1000, (h->interval_ms % 1000) * 1000};
    evtimer_add(h->timer, &tv);
}

/* The first response line decides: the expected status is healthy, anything else retries.
 * No line within SBX_HEALTH_HTTP_MAX bytes is a failed attempt (the read watermark keeps
 * libevent from buffering more); attempt_cb bounds how long the line may take. */
static void http_read_cb(struct bufferevent *bev, void *arg) {
    struct health *h = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
    if (line == NULL) {
        if (evbuffer_get_length(in) >= SBX_HEALTH_HTTP_MAX)
            schedule(h);
        return;
    }
    int status = 0;
    int ok = sscanf(line, "HTTP/%*d.%*d %d", &status) == 1 && status == h->sb->cfg.health.status;
    free(line);
    if (ok)
        finish(h, 1);
    else
        schedule(h);
}

/* Connected: tcp is healthy at once, http sends its GET. A connect error or EOF retries. */
static void conn_event_cb(struct bufferevent *bev, short what, void *arg) {
    struct health *h = arg;
    if (what & BEV_EVENT_CONNECTED) {
        if (h->sb->cfg.health.type == SBX_HC_TCP) {
            finish(h, 1);
            return;
        }
        evbuffer_add_printf(bufferevent_get_output(bev),
                            "GET %s HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                            h->sb->cfg.health.path != NULL ? h->sb->cfg.health.path : "/");
        bufferevent_enable(bev, EV_READ);
        return;
    }
    schedule(h);
}

/* A tcp or http attempt reached its hard deadline: it failed, whatever the peer is doing. */
static void attempt_cb(evutil_socket_t fd, short what, void *arg) {
    (void)fd;
    (void)what;
    schedule(arg);
}

/* Exec probe answered: exit code 0 within its timeout is healthy, anything else retries. */
static void exec_done(uint64_t key, const struct sbx_exec_result *r, const struct sbx_err *err) {
    struct health *h = (struct health *)(uintptr_t)key;
    h->exec_running = 0;
    if (err == NULL && r != NULL && !r->timed_out && r->exit_code == 0)
        finish(h, 1);
    else
        schedule(h);
}

/* Beam probe answered: the node returned a value (it is up and took our cookie); anything
 * else (not registered yet, refused, timeout) retries. */
static void beam_done(uint64_t key, const struct sbx_remote_result *res) {
    struct health *h = (struct health *)(uintptr_t)key;
    h->remote_running = 0;
    if (res->kind == SBX_REMOTE_VALUE)
        finish(h, 1);
    else
        schedule(h);
}

/* One beam attempt: erlang:node() in the sandbox's node, for at most what is left of the
 * deadline and 2 s. Not even starting one (container not running) retries. */
static void probe_beam(struct health *h) {
    static const char no_args[] = {ERL_NIL_EXT};
    struct sbx_sandbox *sb = h->sb;
    struct sbx_beam_target t;
    int64_t left = h->deadline - sbx_mono_ms();
    if (left > 2000)
        left = 2000;
    if (left < 1)
        left = 1;
    if (sb->backend->beam_target != NULL && sb->backend->beam_target(sb, &t) == 0 &&
        sbx_remote_call(sb->core->node, &t, "erlang", "node", no_args, sizeof no_args, (int)left,
                        beam_done, (uint64_t)(uintptr_t)h) == 0)
        h->remote_running = 1;
    memset(&t, 0, sizeof t);
    if (!h->remote_running)
        schedule(h);
}

/* The probe timer: one attempt of the configured kind; failing to even start one retries. */
static void probe(evutil_socket_t fd, short what, void *arg) {
    struct health *h = arg;
    struct sbx_sandbox *sb = h->sb;
    const struct sbx_health_check *hc = &sb->cfg.health;
    (void)fd;
    (void)what;
    if (sb->status == SBX_ST_PAUSED) {
        schedule(h); /* a frozen workload is not probed */
        return;
    }
    if (h->beam) {
        probe_beam(h);
        return;
    }
    if (hc->type == SBX_HC_EXEC) {
        struct sbx_exec_opts opts;
        struct sbx_err err;
        memset(&opts, 0, sizeof opts);
        memset(&err, 0, sizeof err);
        /* One attempt may not outlive the check's deadline. */
        int64_t left = h->deadline - sbx_mono_ms();
        opts.timeout_ms = (int)(left < 1 ? 1 : left < hc->timeout_ms ? left : hc->timeout_ms);
        opts.max_output_bytes = 4096;
        if (sb->backend->exec(sb, &hc->cmd, &opts, (uint64_t)(uintptr_t)h, exec_done, &err) == 0)
            h->exec_running = 1;
        else
            schedule(h);
        return;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hc->port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sb->backend != NULL && sb->backend->probe_addr != NULL)
        (void)sb->backend->probe_addr(sb, hc->port, &sa);
    h->bev = bufferevent_socket_new(sb->core->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (h->bev == NULL) {
        schedule(h);
        return;
    }
    bufferevent_setcb(h->bev, http_read_cb, NULL, conn_event_cb, h);
    bufferevent_setwatermark(h->bev, EV_READ, 0, SBX_HEALTH_HTTP_MAX);
    /* One attempt may take at most what is left of the deadline, and 2 s: the timer is a hard
     * bound (libevent's read timeout restarts with every byte that arrives). */
    int64_t left = h->deadline - sbx_mono_ms();
    if (left > 2000)
        left = 2000;
    if (left < 1)
        left = 1;
    struct timeval tmo = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    bufferevent_set_timeouts(h->bev, &tmo, &tmo);
    evtimer_add(h->attempt_timer, &tmo);
    if (bufferevent_socket_connect(h->bev, (struct sockaddr *)&sa, sizeof sa) != 0)
        schedule(h);
}

/* See health.h. */
int sbx_health_wanted(const struct sbx_sandbox *sb) {
    return sb->cfg.health.type != SBX_HC_NONE ||
           (sb->cfg.type == SBX_TYPE_DOCKER && sb->cfg.has_beam && sb->backend != NULL &&
            sb->backend->beam_target != NULL);
}

/* See health.h. The first attempt runs from the loop, never inside this call; done runs
 * once unless the probe is cancelled. sbx_sandbox_free aborts a probe, so sb outlives it. */
int sbx_health_start(struct sbx_sandbox *sb, uint64_t key, sbx_health_fn done) {
    struct health *h = calloc(1, sizeof *h);
    if (h == NULL)
        return -1;
    h->sb = sb;
    h->key = key;
    h->done = done;
    h->beam = sb->cfg.health.type == SBX_HC_NONE;
    h->interval_ms = h->beam ? SBX_HEALTH_BEAM_INTERVAL_MS : sb->cfg.health.interval_ms;
    h->deadline = sbx_mono_ms() + (h->beam ? SBX_HEALTH_BEAM_MS : sb->cfg.health.timeout_ms);
    h->timer = evtimer_new(sb->core->base, probe, h);
    h->attempt_timer = evtimer_new(sb->core->base, attempt_cb, h);
    if (h->timer == NULL || h->attempt_timer == NULL) {
        if (h->timer != NULL)
            event_free(h->timer);
        if (h->attempt_timer != NULL)
            event_free(h->attempt_timer);
        free(h);
        return -1;
    }
    h->next = probes;
    probes = h;
    event_active(h->timer, 0, 0);
    return 0;
}

/* See health.h. An exec probe under way is killed; done is not called. */
void sbx_health_cancel(struct sbx_sandbox *sb) {
    struct health *h = find(sb);
    if (h != NULL)
        unlink_free(h);
}

/* See health.h. done runs here, re-entrantly, with healthy 0. */
void sbx_health_abort(struct sbx_sandbox *sb) {
    struct health *h = find(sb);
    if (h != NULL)
        finish(h, 0);
}
