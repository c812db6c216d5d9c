/* metrics and processes of a container: a stats stream kept open while it runs (the
 * latest sample answers metrics), and top for the process list. Queries are answered
 * through their done callback, never inside the call that asked (a zero-delay timer
 * when the answer is ready at once). */
#define _GNU_SOURCE
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/dk.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "util/clock.h"
#include "util/log.h"


/* Unlinks q from ds's list; frees nothing. */
static void query_unlink(struct dk_state *ds, struct dk_query *q) {
    for (struct dk_query **pp = &ds->queries; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            return;
        }
    }
}

/* Frees q (unlinked) and its ready answer. */
static void query_free(struct dk_query *q) {
    free(q->term);
    free(q);
}

/* See dk.h. Linked into ds; NULL when out of memory. */
struct dk_query *dk_query_new(struct dk_state *ds, int kind, uint64_t key, sbx_value_done_fn done) {
    struct dk_query *q = calloc(1, sizeof *q);
    if (q == NULL)
        return NULL;
    q->kind = kind;
    q->key = key;
    q->done = done;
    q->next = ds->queries;
    ds->queries = q;
    return q;
}

/* See dk.h. Answers q now and frees it. done may run anything, but not free ds (the
 * core never frees a sandbox from a query answer). */
void dk_query_answer(struct dk_state *ds, struct dk_query *q, const char *term, size_t len,
                     const struct sbx_err *err) {
    query_unlink(ds, q);
    q->done(ds->sb, q->key, term, len, err);
    query_free(q);
}

/* Zero-delay timer: answers every query whose answer is ready. */
static void query_timer_cb(evutil_socket_t fd, short what, void *arg) {
    struct dk_state *ds = arg;
    (void)fd;
    (void)what;
    for (;;) {
        struct dk_query *q = ds->queries;
        while (q != NULL && q->term == NULL && !q->has_err)
            q = q->next;
        if (q == NULL)
            break;
        struct sbx_err err = q->err;
        dk_query_answer(ds, q, q->term, q->term_len, q->has_err ? &err : NULL);
    }
}

/* See dk.h. term is copied; answered from the loop's next turn. */
void dk_query_answer_later(struct dk_state *ds, struct dk_query *q, const char *term, size_t len,
                           const struct sbx_err *err) {
    struct timeval tv = {0, 0};
    if (err != NULL || term == NULL) {
        q->has_err = 1;
        if (err != NULL)
            q->err = *err;
        else
            q->err = (struct sbx_err){.reason_atom = "backend", .detail = "out of memory"};
    } else {
        q->term = malloc(len > 0 ? len : 1);
        if (q->term == NULL) {
            q->has_err = 1;
            q->err = (struct sbx_err){.reason_atom = "backend", .detail = "out of memory"};
        } else {
            memcpy(q->term, term, len);
            q->term_len = len;
        }
    }
    if (ds->query_timer == NULL)
        ds->query_timer = evtimer_new(ds->sb->core->base, query_timer_cb, ds);
    if (ds->query_timer != NULL)
        evtimer_add(ds->query_timer, &tv);
}

/* See dk.h. Drops the query with key (its request too) without answering: 1 if found. */
int dk_query_cancel(struct dk_state *ds, uint64_t key) {
    for (struct dk_query *q = ds->queries; q != NULL; q = q->next) {
        if (q->key == key && key != 0) {
            query_unlink(ds, q);
            dk_cancel(dk_engine_peek(), q->op);
            query_free(q);
            return 1;
        }
    }
    return 0;
}

/* See dk.h. Every query is dropped unanswered (release/detach); requests are cancelled
 * by the caller. */
void dk_query_release(struct dk_state *ds) {
    while (ds->queries != NULL) {
        struct dk_query *q = ds->queries;
        ds->queries = q->next;
        query_free(q);
    }
    if (ds->query_timer != NULL)
        event_free(ds->query_timer);
    ds->query_timer = NULL;
}

/* Answers every metrics query waiting for a sample with the latest one. */
static void answer_metrics(struct dk_state *ds) {
    ei_x_buff x;
    ei_x_new(&x);
    dk_metrics_encode(&ds->metrics, &x);
    for (struct dk_query *q = ds->queries; q != NULL; q = q->next)
        if (q->kind == DK_Q_METRICS && q->term == NULL && !q->has_err)
            dk_query_answer_later(ds, q, x.buff, (size_t)x.index, NULL);
    ei_x_free(&x);
}

/* One stats sample. */
static void stats_line(void *arg, const char *line, size_t len) {
    struct dk_state *ds = arg;
    struct dk_metrics m;
    memset(&m, 0, sizeof m);
    if (dk_stats_parse(line, len, &m) != 0)
        return;
    m.ts = sbx_wall_ms();
    ds->metrics = m;
    answer_metrics(ds);
}

/* Stats stream data: newline-delimited JSON samples. */
static void stats_data(struct dk_op *op, const char *buf, size_t len) {
    dk_lines_feed(&op->ds->stats_lines, buf, len, stats_line, op->ds);
}

/* The stats stream ended (container stopped or engine gone). */
static void stats_done(struct dk_op *op, int status, const char *body, size_t len,
                       const char *err) {
    (void)status;
    (void)body;
    (void)len;
    (void)err;
    struct dk_state *ds = op->ds;
    ds->stats_op = NULL;
    dk_lines_free(&ds->stats_lines);
    /* Nobody waits for a sample that will not come (the next query re-opens it). */
    struct sbx_err e2 = {.reason_atom = "backend", .detail = "the stats stream ended"};
    for (struct dk_query *q = ds->queries; q != NULL; q = q->next)
        if (q->kind == DK_Q_METRICS && q->term == NULL && !q->has_err)
            dk_query_answer_later(ds, q, NULL, 0, &e2);
}

/* See dk.h. Opens the stats stream of a running container if it is not open. */
void dk_stats_open(struct dk_state *ds) {
    char path[200];
    if (ds->stats_op != NULL || ds->cid[0] == '\0')
        return;
    dk_lines_free(&ds->stats_lines);
    snprintf(path, sizeof path, "/containers/%s/stats?stream=1", ds->cid);
    ds->stats_op = dk_request(dk_engine_peek(), ds, "GET", path, 0, NULL, 0, NULL, 0, 0,
                              stats_data, stats_done, NULL);
}

/* See dk.h. Metrics queries waiting for a sample are answered not_running. */
void dk_metrics_fail(struct dk_state *ds) {
    struct sbx_err err = {.reason_atom = "not_running"};
    for (struct dk_query *q = ds->queries; q != NULL; q = q->next)
        if (q->kind == DK_Q_METRICS && q->term == NULL && !q->has_err)
            dk_query_answer_later(ds, q, NULL, 0, &err);
}

/* See dk.h (backend metrics_async): the latest sample, or the next one. */
int dk_metrics_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                     struct sbx_err *err) {
    struct dk_state *ds = sb->bstate;
    if (!dk_engine_check_up(dk_engine_peek(), err))
        return -1;
    if (ds == NULL || ds->phase != DK_RUNNING || ds->end_pending) {
        err->reason_atom = "not_running";
        return -1;
    }
    struct dk_query *q = dk_query_new(ds, DK_Q_METRICS, key, done);
    if (q == NULL) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "out of memory");
        return -1;
    }
    dk_stats_open(ds);
    if (ds->metrics.have) {
        ei_x_buff x;
        ei_x_new(&x);
        dk_metrics_encode(&ds->metrics, &x);
        dk_query_answer_later(ds, q, x.buff, (size_t)x.index, NULL);
        ei_x_free(&x);
    }
    return 0;
}

/* top answered: the processes list. */
static void top_done(struct dk_op *op, int status, const char *body, size_t len,
                     const char *err) {
    struct dk_state *ds = op->ds;
    struct dk_query *q = op->arg;
    struct sbx_err e2;
    ei_x_buff x;
    memset(&e2, 0, sizeof e2);
    q->op = NULL;
    ei_x_new(&x);
    if (status == 200 && dk_top_encode(body, len, &x) == 0) {
        dk_query_answer(ds, q, x.buff, (size_t)x.index, NULL);
    } else {
        if (status == 409 || status == 404)
            e2.reason_atom = "not_running";
        else
            dk_set_http_err(&e2, status, body, err);
        dk_query_answer(ds, q, NULL, 0, &e2);
    }
    ei_x_free(&x);
}

/* See dk.h (backend processes_async): GET top with ps columns pid, comm, stat, rss, pcpu. */
int dk_processes_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                       struct sbx_err *err) {
    struct dk_state *ds = sb->bstate;
    char path[300];
    if (!dk_engine_check_up(dk_engine_peek(), err))
        return -1;
    if (ds == NULL || ds->phase != DK_RUNNING || ds->cid[0] == '\0') {
        err->reason_atom = "not_running";
        return -1;
    }
    struct dk_query *q = dk_query_new(ds, DK_Q_PROCESSES, key, done);
    if (q == NULL) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "out of memory");
        return -1;
    }
    snprintf(path, sizeof path, "/containers/%s/top?ps_args=-o%%20pid%%2Ccomm%%2Cstat%%2Crss%%2Cpcpu",
             ds->cid);
    q->op = dk_request(dk_engine_peek(), ds, "GET", path, 0, NULL, 0, NULL, 15000, 0, NULL,
                       top_done, q);
    if (q->op == NULL) {
        query_unlink(ds, q);
        query_free(q);
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "cannot send the top request");
        return -1;
    }
    return 0;
}
