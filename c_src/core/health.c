/* Health probes: tcp (connect), http (GET, status line), exec (exit code 0), each
 * retried every interval_ms until timeout_ms. One probe at a time per sandbox. */
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
#include "util/clock.h"

struct health {
    struct health *next;
    struct sbx_sandbox *sb;
    uint64_t key;
    sbx_health_fn done;
    int64_t deadline;
    struct event *timer;
    struct bufferevent *bev;
    int exec_running;
};

static struct health *probes;

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
    if (h->exec_running && h->sb->backend->exec_cancel != NULL)
        h->sb->backend->exec_cancel(h->sb, (uint64_t)(uintptr_t)h);
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
    const struct sbx_health_check *hc = &h->sb->cfg.health;
    if (h->bev != NULL) {
        bufferevent_free(h->bev);
        h->bev = NULL;
    }
    if (sbx_mono_ms() >= h->deadline || h->sb->status != SBX_ST_RUNNING) {
        finish(h, 0);
        return;
    }
    struct timeval tv = {hc->interval_ms / 1000, (hc->interval_ms % 1000) * 1000};
    evtimer_add(h->timer, &tv);
}

/* The first response line decides: the expected status is healthy, anything
 * else retries. Nothing bounds how long that line may take to come. */
static void http_read_cb(struct bufferevent *bev, void *arg) {
    struct health *h = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
    if (line == NULL)
        return;
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

/* Exec probe answered: exit code 0 within its timeout is healthy, anything else retries. */
static void exec_done(uint64_t key, const struct sbx_exec_result *r, const struct sbx_err *err) {
    struct health *h = (struct health *)(uintptr_t)key;
    h->exec_running = 0;
    if (err == NULL && r != NULL && !r->timed_out && r->exit_code == 0)
        finish(h, 1);
    else
        schedule(h);
}

/* The probe timer: one attempt of the configured kind; failing to even start one retries. */
static void probe(evutil_socket_t fd, short what, void *arg) {
    struct health *h = arg;
    struct sbx_sandbox *sb = h->sb;
    const struct sbx_health_check *hc = &sb->cfg.health;
    (void)fd;
    (void)what;
    if (hc->type == SBX_HC_EXEC) {
        struct sbx_exec_opts opts;
        struct sbx_err err;
        memset(&opts, 0, sizeof opts);
        memset(&err, 0, sizeof err);
        opts.timeout_ms = hc->timeout_ms;
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
    /* One attempt may take at most what is left of the deadline, and 2 s. */
    int64_t left = h->deadline - sbx_mono_ms();
    if (left > 2000)
        left = 2000;
    if (left < 1)
        left = 1;
    struct timeval tmo = {(time_t)(left / 1000), (suseconds_t)(left % 1000) * 1000};
    bufferevent_set_timeouts(h->bev, &tmo, &tmo);
    if (bufferevent_socket_connect(h->bev, (struct sockaddr *)&sa, sizeof sa) != 0)
        schedule(h);
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
    h->deadline = sbx_mono_ms() + sb->cfg.health.timeout_ms;
    h->timer = evtimer_new(sb->core->base, probe, h);
    if (h->timer == NULL) {
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
