/* The docker backend's own shared declarations (not for the rest of the daemon).
 *
 * One engine (struct dk_engine) per daemon owns the net/http client, the negotiated API
 * version, the availability state and every request in flight. Each request is a
 * struct dk_op: a small record found again by its key when net/http calls back, owned by
 * the engine from dk_request until its on_done has returned or it is cancelled. An op
 * may belong to a sandbox (ds): dk_cancel_all(ds) drops them all, so no callback ever
 * reaches a freed sandbox.
 *
 * Per sandbox, struct dk_state (sb->bstate) holds the container id and the streams kept
 * open while it runs (logs, wait, stats), the execs and queries under way. */
#ifndef SBX_BACKENDS_DOCKER_DK_H
#define SBX_BACKENDS_DOCKER_DK_H

#include <ei.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "core/sandbox.h"
#include "net/demux.h"

struct sbx_core;
struct sbx_sandbox;
struct sbx_http;
struct event;
struct dk_op;
struct dk_state;

#define DK_API_MAX_MINOR 45 /* newest Engine API version we speak: 1.45 */
#define DK_API_MIN_MINOR 41 /* oldest we accept: 1.41 */
#define DK_CID_MAX 72
#define DK_LINE_MAX ((size_t)256 << 10) /* a JSON line of a stream (stats, events, pull) */
#define DK_COPY_MAX ((size_t)64 << 20)

typedef void (*dk_data_fn)(struct dk_op *op, const char *buf, size_t len);
typedef void (*dk_done_fn)(struct dk_op *op, int status, const char *body, size_t len,
                           const char *err);

struct dk_op {
    struct dk_op *next, *prev;
    uint64_t key;       /* ours, passed to net/http */
    uint64_t http_id;   /* net/http's request id */
    struct dk_state *ds; /* owning sandbox, or NULL for the engine's own */
    dk_data_fn on_data;
    dk_done_fn on_done;
    void *arg;          /* the caller's; never freed by the engine */
    uint64_t u64;       /* the caller's small values */
    char tag[DK_CID_MAX]; /* the caller's small string (an exec id ...) */
};

/* A growing line buffer for newline-delimited JSON streams, bounded by DK_LINE_MAX:
 * a longer line is dropped whole. */
struct dk_lines {
    char *buf;
    size_t len, cap;
    int skipping;
};
typedef void (*dk_line_fn)(void *arg, const char *line, size_t len);
void dk_lines_feed(struct dk_lines *l, const char *data, size_t len, dk_line_fn fn, void *arg);
void dk_lines_free(struct dk_lines *l);

struct dk_engine {
    struct sbx_core *core;
    struct sbx_http *http;
    int up;                /* 1 once /version answered and until a connect error */
    int ever_probed;
    char why[200];         /* why it is unavailable */
    int minor;             /* negotiated 1.<minor> */
    struct dk_op *ops;     /* in flight */
    uint64_t next_key;
    struct dk_op *probe_op;
    struct dk_op *events_op;
    struct dk_lines events_lines;
    struct event *probe_timer;
    uint64_t stdin_seq;
    int64_t events_opened_ms;
};

/* An exec under way (exec.c). */
struct dk_exec;

/* A metrics/processes/copy query waiting for its answer. */
struct dk_query {
    struct dk_query *next;
    uint64_t key;
    sbx_value_done_fn done;
    int kind;               /* DK_Q_* */
    struct dk_op *op;       /* its request, if any */
    char *term;             /* a ready answer (zero-delay timer) */
    size_t term_len;
    struct sbx_err err;
    int has_err;
};
#define DK_Q_METRICS 1
#define DK_Q_PROCESSES 2
#define DK_Q_COPY 3

enum dk_phase { DK_IDLE = 0, DK_CREATING, DK_RUNNING };

struct dk_metrics {
    int have;
    double cpu_percent;
    uint64_t memory_bytes, memory_limit_bytes, pids, rx_bytes, tx_bytes;
    int64_t ts;
};

#define DK_PORTS_MAX 32
/* A published port as the engine reports it (host 0 never: Docker chose one). */
struct dk_port {
    int host, container;
    char proto[8];
};

struct dk_state {
    struct sbx_sandbox *sb;
    char cid[DK_CID_MAX];       /* container id; "" when none */
    enum dk_phase phase;
    int stop_asked;             /* stop during creation: abort when the step returns */
    int gone;                   /* the container was removed */
    struct dk_op *step;         /* the create sequence's current request */
    struct dk_op *logs_op, *wait_op, *stats_op, *inspect_op;
    int inspect_again;
    int64_t logs_since_ms;      /* logs follow from here (0: from the start) */
    struct sbx_demux logs_demux;
    char *coalesce;             /* output gathered from one chunk before it goes out */
    size_t co_len;
    int co_stream;
    struct event *co_timer;     /* sends what was gathered after a few ms */
    /* end under way: waiting for the logs stream to drain */
    int end_pending;
    struct sbx_exit end_exit;
    int end_oom;
    int oom_seen;
    struct event *end_timer;
    /* pull */
    struct dk_lines pull_lines;
    int64_t pull_last_ms;
    char pull_error[200];
    /* stats */
    struct dk_lines stats_lines;
    struct dk_metrics metrics;
    struct dk_query *queries;
    struct event *query_timer;
    struct dk_exec *execs;
    /* create sequence */
    int step_kind;              /* DK_STEP_* of ds->step */
    int made_now;               /* this start created the container */
    int conflict_retried;       /* a stale container with our name was removed */
    int pulled;                 /* this start pulled the image */
    int waiting_engine;         /* started before the engine's first answer */
    int stop_waiting_engine;    /* stopped (adopted) before the engine's first answer */
    int stop_grace_ms;          /* the grace of that stop */
    struct sbx_err fail_err;
    int64_t logs_last_ms;       /* wall time of the last output received */
    void (*remove_done)(struct sbx_sandbox *sb);
    struct dk_port ports[DK_PORTS_MAX];
    int nports;
    char ip[48];                /* the container's IPv4 address ("" unknown / none) */
    /* pause/resume (pause.c): the request under way and whom it answers; pause_seq counts
     * the ones answered, so that an inspect sent before one of them is not believed about
     * State.Paused. */
    struct dk_op *pause_op;
    sbx_value_done_fn pause_done;
    unsigned pause_seq;
};
#define DK_STEP_PULL 2
#define DK_STEP_CREATE 3
#define DK_STEP_START 4
#define DK_STEP_UNDO 5

/* engine.c */
struct dk_engine *dk_engine(struct sbx_core *core);
struct dk_engine *dk_engine_peek(void);
/* Starts a request; path without the /vX.Y prefix (added unless raw). NULL with *why. */
struct dk_op *dk_request(struct dk_engine *e, struct dk_state *ds, const char *method,
                         const char *path, int raw, const void *body, size_t body_len,
                         const char *ctype, long timeout_ms, size_t max_body,
                         dk_data_fn on_data, dk_done_fn on_done, void *arg);
void dk_cancel(struct dk_engine *e, struct dk_op *op);
void dk_cancel_all(struct dk_engine *e, struct dk_state *ds);
/* Removes container cid without waiting (its sandbox is gone); nothing when down. */
void dk_remove_orphan(struct dk_engine *e, const char *cid);
/* A request failed below HTTP: looks at the engine again (may mark it down). */
void dk_engine_suspect(struct dk_engine *e, const char *err);
/* 1 if up; else 0 and *err = {unavailable, Why}. */
int dk_engine_check_up(struct dk_engine *e, struct sbx_err *err);
/* Fills err from an answer: "<status>: <Docker message>" or the transport error. */
void dk_set_http_err(struct sbx_err *err, int status, const char *body, const char *terr);
/* Percent-encodes s for a query value into out (cap); 0 or -1 if it does not fit. */
int dk_urlenc(const char *s, char *out, size_t cap);
/* The container name for sb: sandboxd-<node>-<id>, node chars outside [A-Za-z0-9_.-] as '_'. */
void dk_container_name(const struct sbx_sandbox *sb, char *out, size_t cap);

/* container.c */
int dk_start(struct sbx_sandbox *sb, struct sbx_err *err);
void dk_start_resume(struct dk_state *ds);
void dk_stop(struct sbx_sandbox *sb, int grace_ms);
void dk_remove(struct sbx_sandbox *sb, void (*done)(struct sbx_sandbox *sb));
void dk_refresh(struct dk_state *ds);
void dk_container_free(struct dk_state *ds);
/* The reconcile step for one sandbox, with what the container list said about it. */
void dk_reconcile_one(struct dk_state *ds, const char *cid);

/* pause.c: backend pause/resume (the Engine's pause and unpause). */
int dk_pause(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done, struct sbx_err *err);
int dk_resume(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done, struct sbx_err *err);
/* An inspect answered: State.Paused (j: the inspect's State object) tells the core of a
 * pause or unpause made outside sandboxd, unless one of ours was answered since the
 * inspect was sent (its seq: pause_seq then). */
void dk_pause_inspected(struct dk_state *ds, json_t *state, unsigned seq);

/* exec.c */
int dk_exec(struct sbx_sandbox *sb, const struct sbx_strv *cmd, const struct sbx_exec_opts *opts,
            uint64_t key, sbx_exec_done_fn done, struct sbx_err *err);
/* 1 if key named an exec (cancelled). */
int dk_exec_cancel(struct dk_state *ds, uint64_t key);
void dk_exec_release(struct dk_state *ds, int answer);

/* stats.c */
void dk_stats_open(struct dk_state *ds);
void dk_metrics_fail(struct dk_state *ds);
int dk_metrics_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                     struct sbx_err *err);
int dk_processes_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                       struct sbx_err *err);
/* Queries: answer later from a zero-delay timer (term copied) or now via the op. */
struct dk_query *dk_query_new(struct dk_state *ds, int kind, uint64_t key, sbx_value_done_fn done);
void dk_query_answer(struct dk_state *ds, struct dk_query *q, const char *term, size_t len,
                     const struct sbx_err *err);
void dk_query_answer_later(struct dk_state *ds, struct dk_query *q, const char *term, size_t len,
                           const struct sbx_err *err);
int dk_query_cancel(struct dk_state *ds, uint64_t key);
void dk_query_release(struct dk_state *ds);

/* archive.c */
int dk_copy_to(struct sbx_sandbox *sb, const char *path, const char *data, size_t len,
               uint64_t key, sbx_value_done_fn done, struct sbx_err *err);
int dk_copy_from(struct sbx_sandbox *sb, const char *path, uint64_t key,
                 sbx_value_done_fn done, struct sbx_err *err);
/* Container path for a caller's path: relative under /app, absolute as it is. */
void dk_container_path(const char *path, char *out, size_t cap);
/* PUTs a tar holding data as file abs (used by exec for stdin too). */
struct dk_op *dk_put_file(struct dk_engine *e, struct dk_state *ds, const char *abs,
                          const char *data, size_t len, dk_done_fn on_done, void *arg,
                          struct sbx_err *err);

/* json.c: pure helpers (unit-tested). */
struct dk_create_spec {
    const struct sbx_config *cfg;
    const char *id;
    const char *node;
    const char *workspace;
};
/* The body of POST /containers/create; NULL when out of memory. Caller json_decref. */
json_t *dk_create_body(const struct dk_create_spec *s);
/* One stats object -> metrics (ts left to the caller). 0, or -1 if not a stats object. */
int dk_stats_parse(const char *json, size_t len, struct dk_metrics *m);
/* Encodes metrics as the metrics/1 map (no version byte). */
void dk_metrics_encode(const struct dk_metrics *m, ei_x_buff *x);
/* The top answer -> the processes/1 list. 0 or -1 (x then untouched). */
int dk_top_encode(const char *json, size_t len, ei_x_buff *x);
/* Image reference -> fromImage and tag for a pull ("busybox" -> "busybox", "latest"). */
void dk_image_split(const char *image, char *name, size_t ncap, char *tag, size_t tcap);

/* Container inspect -> its published ports (NetworkSettings.Ports), one per container
 * port and host port; returns how many (at most cap). */
int dk_ports_parse(const char *json, size_t len, struct dk_port *out, int cap);
/* Container inspect -> its IPv4 address (NetworkSettings.IPAddress, else the first
 * network's) into out; "" when it has none. */
void dk_ip_parse(const char *json, size_t len, char *out, size_t cap);
/* Encodes ports as [#{host, container, proto}]. */
void dk_ports_encode(const struct dk_port *p, int n, ei_x_buff *x);

/* tar.c: pure helpers (unit-tested). */
/* A tar holding one regular file at path name (relative, no leading '/'). malloc'ed in
 * *out; 0 or -1. */
int dk_tar_make(const char *name, const char *data, size_t len, char **out, size_t *out_len);
/* The first entry of a tar: 0 and its bytes in *out (malloc'ed) for a regular file;
 * -1 with *why "eisdir" (directory or other), "too_large", "enoent" (empty) or "einval". */
int dk_tar_read_first(const char *tar, size_t len, size_t max, char **out, size_t *out_len,
                      const char **why);

#endif
