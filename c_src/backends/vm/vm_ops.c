/* What sandboxd asks the guest agent: exec (and the main workload), copy_to, copy_from,
 * processes, metrics, shutdown. Each is a request in the agent connection's table
 * (vm_agent.h) with its own frame handler. Answers never come inside the call that
 * started them: they come from the loop, as frames arrive. An exec has a second
 * deadline on the host (its timeout plus EXEC_GRACE_MS): a guest that stops answering
 * gets KILL and the caller {error, timeout}. */
#define _GNU_SOURCE
#include <ei.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backends/vm/vm_agent.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "util/psstate.h"

#define EXEC_GRACE_MS 5000
#define COPY_FROM_MAX (64u << 20)
#define QUERY_TIMEOUT_MS 15000

/* See vm.h. */
int64_t vm_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* See vm.h. */
void vm_err(struct sbx_err *err, const char *fmt, ...) {
    va_list ap;
    err->reason_atom = "backend";
    va_start(ap, fmt);
    vsnprintf(err->detail, sizeof err->detail, fmt, ap);
    va_end(ap);
    if (err->detail[0] == '\0')
        snprintf(err->detail, sizeof err->detail, "%s", "vm error");
}

/* An ERR frame's text as an error {backend, vm, "guest: Text (errno N)"}. */
static void guest_err(const struct agent_frame *f, struct sbx_err *err) {
    struct agent_err_msg m;
    if (agent_parse_err(f, &m) != 0)
        vm_err(err, "the guest agent sent a malformed ERR");
    else
        vm_err(err, "guest: %.*s (errno %u)", (int)(m.text.len > 200 ? 200 : m.text.len),
               (const char *)m.text.ptr, m.err);
}

/* ---- exec ---- */

struct exec_req {
    sbx_exec_done_fn done;
    struct evbuffer *out[2];
    size_t max;
    int truncated;
    int64_t started_ms;
    struct event *deadline;
};

/* Frees an exec's buffers and timer. */
static void exec_free(struct vm_req *r) {
    struct exec_req *x = r->data;
    if (x == NULL)
        return;
    for (int i = 0; i < 2; i++)
        if (x->out[i] != NULL)
            evbuffer_free(x->out[i]);
    if (x->deadline != NULL)
        event_free(x->deadline);
    free(x);
}

/* Answers an exec with err (the main workload has no caller: nothing to answer). */
static void exec_fail(struct vm_req *r, const char *why, int answer) {
    struct exec_req *x = r->data;
    if (!answer || r->is_main || x->done == NULL)
        return;
    struct sbx_err err;
    memset(&err, 0, sizeof err);
    vm_err(&err, "%s", why);
    x->done(r->key, NULL, &err);
}

/* OUT and EXIT of an exec or of the main workload (whose output is the sandbox's log). */
static int exec_frame(struct vm_req *r, const struct agent_frame *f) {
    struct exec_req *x = r->data;
    struct vm_state *vs = vm_agent_vm(r->a);
    struct sbx_err err;
    memset(&err, 0, sizeof err);
    if (f->type == AGENT_STARTED)
        return 0;
    if (f->type == AGENT_OUT) {
        uint8_t stream;
        struct agent_str d;
        if (agent_parse_out(f, &stream, &d) != 0)
            return 0;
        if (r->is_main) {
            sbx_sandbox_output(vs->sb, stream - 1, (const char *)d.ptr, d.len);
            return 0;
        }
        struct evbuffer *b = x->out[stream - 1];
        size_t have = evbuffer_get_length(b), take = d.len;
        if (have + take > x->max) {
            take = have < x->max ? x->max - have : 0;
            x->truncated = 1;
        }
        evbuffer_add(b, d.ptr, take);
        return 0;
    }
    if (f->type == AGENT_EXIT) {
        struct agent_exit_msg m;
        if (agent_parse_exit(f, &m) != 0) {
            m.exit_code = -1;
            m.signal = 0;
            m.timed_out = 0;
        }
        if (r->is_main) {
            struct sbx_exit ex = {m.signal != 0 ? 2 : 1, m.signal != 0 ? (int)m.signal : m.exit_code};
            vm_on_main_exit(vs, &ex);
            return 1;
        }
        struct sbx_exec_result res;
        memset(&res, 0, sizeof res);
        res.exit_code = m.signal != 0 ? -1 : m.exit_code;
        res.signal = (int)m.signal;
        res.timed_out = m.timed_out;
        res.truncated = x->truncated;
        res.duration_ms = vm_now_ms() - x->started_ms;
        res.stdout_len = evbuffer_get_length(x->out[0]);
        res.stderr_len = evbuffer_get_length(x->out[1]);
        res.stdout_data = (const char *)evbuffer_pullup(x->out[0], -1);
        res.stderr_data = (const char *)evbuffer_pullup(x->out[1], -1);
        x->done(r->key, &res, NULL);
        return 1;
    }
    if (f->type == AGENT_ERR) {
        guest_err(f, &err);
        if (r->is_main) {
            struct sbx_exit ex = {1, 127};
            sbx_sandbox_output(vs->sb, 1, err.detail, strlen(err.detail));
            sbx_sandbox_output(vs->sb, 1, "\n", 1);
            vm_on_main_exit(vs, &ex);
        } else {
            x->done(r->key, NULL, &err);
        }
        return 1;
    }
    return 0;
}

static const struct vm_req_ops EXEC_OPS = {exec_frame, exec_fail, exec_free};

/* The host's second deadline: the guest did not end the exec in time. KILL goes to the
 * guest; the caller gets {error, timeout}. */
static void exec_deadline(evutil_socket_t fd, short what, void *arg) {
    struct vm_req *r = arg;
    struct exec_req *x = r->data;
    uint8_t frame[AGENT_HDR_LEN];
    struct sbx_err err = {.reason_atom = "timeout"};
    (void)fd;
    (void)what;
    size_t n = agent_enc_empty(frame, sizeof frame, AGENT_KILL, r->id);
    if (n > 0)
        (void)vm_agent_send(r->a, frame, n);
    x->done(r->key, NULL, &err);
    vm_agent_drop(r->a, r);
}

/* A new request of ops with data, added to a's table. NULL on no memory (data freed by
 * the caller then). */
static struct vm_req *req_new(struct vm_agent *a, const struct vm_req_ops *ops, void *data,
                              uint64_t key, int is_main) {
    struct vm_req *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->ops = ops;
    r->data = data;
    r->key = key;
    r->is_main = is_main;
    vm_agent_add(a, r);
    return r;
}

/* Sends what stdin holds in STDIN frames, then the empty one (EOF). 0 or -1. */
static int send_stdin(struct vm_agent *a, uint32_t id, const char *data, size_t len) {
    static uint8_t frame[AGENT_HDR_LEN + 4 + AGENT_CHUNK];
    size_t n;
    for (size_t off = 0; off < len; off += AGENT_CHUNK) {
        size_t take = len - off > AGENT_CHUNK ? AGENT_CHUNK : len - off;
        n = agent_enc_bytes(frame, sizeof frame, AGENT_STDIN, id, data + off, take);
        if (n == 0 || vm_agent_send(a, frame, n) != 0)
            return -1;
    }
    n = agent_enc_bytes(frame, sizeof frame, AGENT_STDIN, id, "", 0);
    if (n == 0 || vm_agent_send(a, frame, n) != 0)
        return -1;
    return 0;
}

/* See vm.h: EXEC (main: the workload, id 0, output to the log). 0, or -1 with *err. */
int vm_agent_exec(struct vm_agent *a, const struct sbx_strv *cmd, const struct sbx_exec_opts *o,
                  int main, uint64_t key, sbx_exec_done_fn done, struct sbx_err *err) {
    const struct sbx_kvv *envs = o != NULL ? &o->env : NULL;
    const char *env[AGENT_MAX_ARGS];
    char *envbuf[AGENT_MAX_ARGS];
    uint8_t *frame = NULL;
    struct exec_req *x = NULL;
    struct vm_req *r = NULL;
    size_t nenv = 0, cap = AGENT_MAX_FRAME_LEN + 4;
    int rc = -1;
    if (main)
        envs = &vm_agent_vm(a)->sb->cfg.env;
    if (a == NULL) {
        err->reason_atom = "not_running";
        return -1;
    }
    if (cmd->n > AGENT_MAX_ARGS || (envs != NULL && envs->n > AGENT_MAX_ARGS - 1)) {
        vm_err(err, "at most %u arguments and environment entries", AGENT_MAX_ARGS);
        return -1;
    }
    memset(envbuf, 0, sizeof envbuf);
    env[nenv++] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (size_t i = 0; envs != NULL && i < envs->n; i++) {
        if (asprintf(&envbuf[i], "%s=%s", envs->v[i].key, envs->v[i].value) < 0) {
            envbuf[i] = NULL;
            goto nomem;
        }
        env[nenv++] = envbuf[i];
    }
    x = calloc(1, sizeof *x);
    frame = malloc(cap);
    if (x == NULL || frame == NULL)
        goto nomem;
    x->done = done;
    x->max = o != NULL && o->max_output_bytes > 0 ? o->max_output_bytes : (1u << 20);
    x->started_ms = vm_now_ms();
    x->out[0] = evbuffer_new();
    x->out[1] = evbuffer_new();
    if (x->out[0] == NULL || x->out[1] == NULL)
        goto nomem;
    int with_stdin = o != NULL && o->stdin_data != NULL;
    int64_t timeout = o != NULL ? o->timeout_ms : 0;
    uint32_t flags = (main ? AGENT_EXEC_MAIN : 0) | (with_stdin ? AGENT_EXEC_STDIN : 0);
    const char *cwd = main ? vm_agent_vm(a)->sb->cfg.cwd : (o != NULL ? o->cwd : NULL);
    r = req_new(a, &EXEC_OPS, x, key, main);
    if (r == NULL)
        goto nomem;
    x = NULL;
    size_t n = agent_enc_exec(frame, cap, r->id, flags,
                              timeout > 0 && timeout < UINT32_MAX ? (uint32_t)timeout : 0,
                              (const char *const *)cmd->v, (uint32_t)cmd->n, env,
                              (uint32_t)nenv, cwd);
    if (n == 0) {
        vm_err(err, "the command does not fit in one agent frame (1 MiB)");
        goto drop;
    }
    if (vm_agent_send(a, frame, n) != 0 ||
        (with_stdin && send_stdin(a, r->id, o->stdin_data, o->stdin_len) != 0)) {
        vm_err(err, "cannot send to the guest agent");
        goto drop;
    }
    if (!main && timeout > 0) {
        struct exec_req *xr = r->data;
        struct timeval tv = {(timeout + EXEC_GRACE_MS) / 1000, ((timeout + EXEC_GRACE_MS) % 1000) * 1000};
        xr->deadline = evtimer_new(vm_agent_vm(a)->sb->core->base, exec_deadline, r);
        if (xr->deadline != NULL)
            evtimer_add(xr->deadline, &tv);
    }
    rc = 0;
    goto out;
drop:
    vm_agent_drop(a, r);
    goto out;
nomem:
    vm_err(err, "out of memory");
out:
    if (x != NULL) {
        struct vm_req tmp = {.data = x};
        exec_free(&tmp);
    }
    free(frame);
    for (size_t i = 0; i < AGENT_MAX_ARGS; i++)
        free(envbuf[i]);
    return rc;
}

/* See vm.h. */
void vm_agent_keep_main(struct vm_agent *a) {
    struct exec_req *x = calloc(1, sizeof *x);
    if (x != NULL && req_new(a, &EXEC_OPS, x, 0, 1) == NULL)
        free(x);
}

/* ---- copy_to, copy_from, ps, metrics: value queries ---- */

enum q_kind { Q_WRITE, Q_READ, Q_PS, Q_METRICS, Q_SHUTDOWN };

struct query {
    enum q_kind kind;
    sbx_value_done_fn done;
    struct evbuffer *data; /* READ */
    struct event *deadline;
};

/* Frees a query's buffer and timer. */
static void query_free(struct vm_req *r) {
    struct query *q = r->data;
    if (q == NULL)
        return;
    if (q->data != NULL)
        evbuffer_free(q->data);
    if (q->deadline != NULL)
        event_free(q->deadline);
    free(q);
}

/* Answers q with term or err. */
static void query_answer(struct vm_req *r, const char *term, size_t len, const struct sbx_err *err) {
    struct query *q = r->data;
    struct vm_state *vs = vm_agent_vm(r->a);
    if (q->done != NULL)
        q->done(vs->sb, r->key, term, len, err);
}

/* The connection went: the caller gets err. */
static void query_fail(struct vm_req *r, const char *why, int answer) {
    struct sbx_err err;
    memset(&err, 0, sizeof err);
    if (answer != 1)
        return; /* 2: released, queries are dropped (backend.h) */
    vm_err(&err, "%s", why);
    query_answer(r, NULL, 0, &err);
}

/* PS_LIST as the processes list: #{pid, name, status, memory_bytes, cpu_percent,
 * ppid, cmdline}. -1 if malformed. */
static int encode_ps(const struct agent_frame *f, ei_x_buff *x) {
    struct agent_rd rd;
    uint32_t count;
    if (agent_ps_begin(f, &rd, &count) != 0 || count > 100000)
        return -1;
    if (count > 0)
        ei_x_encode_list_header(x, count);
    for (uint32_t i = 0; i < count; i++) {
        struct agent_ps_entry e;
        if (agent_ps_next(&rd, &e) != 0)
            return -1;
        ei_x_encode_map_header(x, 7);
        ei_x_encode_atom(x, "pid");
        ei_x_encode_ulong(x, e.pid);
        ei_x_encode_atom(x, "ppid");
        ei_x_encode_ulong(x, e.ppid);
        ei_x_encode_atom(x, "name");
        ei_x_encode_binary(x, e.name.ptr, (long)e.name.len);
        ei_x_encode_atom(x, "cmdline");
        ei_x_encode_binary(x, e.cmdline.ptr, (long)e.cmdline.len);
        ei_x_encode_atom(x, "status");
        ei_x_encode_atom(x, sbx_ps_state_atom(e.state));
        ei_x_encode_atom(x, "memory_bytes");
        ei_x_encode_ulonglong(x, e.rss_bytes);
        ei_x_encode_atom(x, "cpu_percent");
        ei_x_encode_double(x, 0.0);
    }
    ei_x_encode_empty_list(x);
    return agent_rd_done(&rd);
}

/* METRICS_R as the metrics map: the guest's view (memory, cpu ticks, uptime, load) and
 * the host's memory_limit_bytes. -1 if malformed. */
static int encode_metrics(const struct agent_frame *f, struct vm_state *vs, ei_x_buff *x) {
    struct agent_metrics m;
    if (agent_parse_metrics(f, &m) != 0)
        return -1;
    uint64_t busy = m.cpu_user + m.cpu_system, all = busy + m.cpu_idle;
    ei_x_encode_map_header(x, 8);
    ei_x_encode_atom(x, "memory_bytes");
    ei_x_encode_ulonglong(x, m.mem_total - (m.mem_available < m.mem_total ? m.mem_available : m.mem_total));
    ei_x_encode_atom(x, "memory_limit_bytes");
    ei_x_encode_ulonglong(x, m.mem_total);
    ei_x_encode_atom(x, "cpu_percent");
    ei_x_encode_double(x, all > 0 ? 100.0 * (double)busy / (double)all : 0.0);
    ei_x_encode_atom(x, "pids");
    ei_x_encode_ulong(x, m.nprocs);
    ei_x_encode_atom(x, "uptime_ms");
    ei_x_encode_ulonglong(x, m.uptime_ms);
    ei_x_encode_atom(x, "load");
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_double(x, m.load1 / 1000.0);
    ei_x_encode_double(x, m.load5 / 1000.0);
    ei_x_encode_double(x, m.load15 / 1000.0);
    ei_x_encode_atom(x, "accel");
    /* What qemu itself says (query-kvm), else what it was started with. */
    const char *acc = vm_qmp_accel(vs->qmp);
    ei_x_encode_atom(x, acc[0] ? acc : vs->accel[0] ? vs->accel : "tcg");
    ei_x_encode_atom(x, "ts");
    ei_x_encode_longlong(x, (long long)time(NULL) * 1000);
    return 0;
}

/* Frames of a query: DATA/END for READ, OK for WRITE/SHUTDOWN, PS_LIST, METRICS_R, or
 * ERR. */
static int query_frame(struct vm_req *r, const struct agent_frame *f) {
    struct query *q = r->data;
    struct sbx_err err;
    ei_x_buff x;
    int rc = -1;
    memset(&err, 0, sizeof err);
    if (f->type == AGENT_ERR) {
        guest_err(f, &err);
        query_answer(r, NULL, 0, &err);
        return 1;
    }
    ei_x_new(&x);
    if (q->kind == Q_READ && f->type == AGENT_DATA) {
        struct agent_str d;
        if (agent_parse_bytes(f, &d) == 0 && evbuffer_get_length(q->data) + d.len <= COPY_FROM_MAX) {
            evbuffer_add(q->data, d.ptr, d.len);
            ei_x_free(&x);
            return 0;
        }
        vm_err(&err, "the file is larger than %u bytes", COPY_FROM_MAX);
    } else if (q->kind == Q_READ && f->type == AGENT_END) {
        size_t n = evbuffer_get_length(q->data);
        rc = ei_x_encode_binary(&x, evbuffer_pullup(q->data, -1), (long)n);
    } else if ((q->kind == Q_WRITE || q->kind == Q_SHUTDOWN) && f->type == AGENT_OK) {
        rc = ei_x_encode_atom(&x, "ok");
    } else if (q->kind == Q_PS && f->type == AGENT_PS_LIST) {
        rc = encode_ps(f, &x);
    } else if (q->kind == Q_METRICS && f->type == AGENT_METRICS_R) {
        rc = encode_metrics(f, vm_agent_vm(r->a), &x);
    }
    if (rc == 0) {
        query_answer(r, x.buff, (size_t)x.index, NULL);
    } else {
        if (err.reason_atom == NULL)
            vm_err(&err, "the guest agent answered %s with a malformed %s",
                   q->kind == Q_PS ? "ps" : q->kind == Q_METRICS ? "metrics" : "a file request",
                   agent_type_name(f->type));
        query_answer(r, NULL, 0, &err);
    }
    ei_x_free(&x);
    return 1;
}

static const struct vm_req_ops QUERY_OPS = {query_frame, query_fail, query_free};

/* The guest did not answer a query in time. */
static void query_deadline(evutil_socket_t fd, short what, void *arg) {
    struct vm_req *r = arg;
    struct sbx_err err = {.reason_atom = "timeout"};
    (void)fd;
    (void)what;
    query_answer(r, NULL, 0, &err);
    vm_agent_drop(r->a, r);
}

/* A query of kind added to a's table, with its deadline. NULL with *err. */
static struct vm_req *query_new(struct vm_agent *a, enum q_kind kind, uint64_t key,
                                sbx_value_done_fn done, int64_t timeout_ms, struct sbx_err *err) {
    struct query *q = calloc(1, sizeof *q);
    struct vm_req *r = NULL;
    if (a == NULL) {
        free(q);
        err->reason_atom = "not_running";
        return NULL;
    }
    if (q == NULL || (kind == Q_READ && (q->data = evbuffer_new()) == NULL) ||
        (r = req_new(a, &QUERY_OPS, q, key, 0)) == NULL) {
        if (q != NULL && q->data != NULL)
            evbuffer_free(q->data);
        free(q);
        vm_err(err, "out of memory");
        return NULL;
    }
    q->kind = kind;
    q->done = done;
    q->deadline = evtimer_new(vm_agent_vm(a)->sb->core->base, query_deadline, r);
    if (q->deadline != NULL) {
        struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
        evtimer_add(q->deadline, &tv);
    }
    return r;
}

/* See vm.h: WRITE + DATA + END, answered `ok`. */
int vm_agent_copy_to(struct vm_agent *a, const char *path, const char *data, size_t len,
                     uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    static uint8_t frame[AGENT_HDR_LEN + 4 + AGENT_CHUNK];
    struct vm_req *r = query_new(a, Q_WRITE, key, done, QUERY_TIMEOUT_MS + (int64_t)(len >> 10), err);
    if (r == NULL)
        return -1;
    size_t n = agent_enc_write(frame, sizeof frame, r->id, path, 0644);
    int bad = n == 0 || vm_agent_send(a, frame, n) != 0;
    for (size_t off = 0; !bad && off < len; off += AGENT_CHUNK) {
        size_t take = len - off > AGENT_CHUNK ? AGENT_CHUNK : len - off;
        n = agent_enc_bytes(frame, sizeof frame, AGENT_DATA, r->id, data + off, take);
        bad = n == 0 || vm_agent_send(a, frame, n) != 0;
    }
    n = agent_enc_empty(frame, sizeof frame, AGENT_END, r->id);
    if (bad || n == 0 || vm_agent_send(a, frame, n) != 0) {
        vm_agent_drop(a, r);
        vm_err(err, "cannot send the file to the guest agent");
        return -1;
    }
    return 0;
}

/* See vm.h: READ, answered with the file's binary. */
int vm_agent_copy_from(struct vm_agent *a, const char *path, uint64_t key,
                       sbx_value_done_fn done, struct sbx_err *err) {
    uint8_t frame[AGENT_HDR_LEN + 8 + 4096];
    struct vm_req *r = query_new(a, Q_READ, key, done, QUERY_TIMEOUT_MS * 8, err);
    if (r == NULL)
        return -1;
    size_t n = agent_enc_read(frame, sizeof frame, r->id, path);
    if (n == 0 || vm_agent_send(a, frame, n) != 0) {
        vm_agent_drop(a, r);
        vm_err(err, "cannot send to the guest agent");
        return -1;
    }
    return 0;
}

/* See vm.h: PS or METRICS. */
int vm_agent_query(struct vm_agent *a, int metrics, uint64_t key, sbx_value_done_fn done,
                   struct sbx_err *err) {
    uint8_t frame[AGENT_HDR_LEN];
    struct vm_req *r = query_new(a, metrics ? Q_METRICS : Q_PS, key, done, QUERY_TIMEOUT_MS, err);
    if (r == NULL)
        return -1;
    size_t n = agent_enc_empty(frame, sizeof frame, metrics ? AGENT_METRICS : AGENT_PS, r->id);
    if (n == 0 || vm_agent_send(a, frame, n) != 0) {
        vm_agent_drop(a, r);
        vm_err(err, "cannot send to the guest agent");
        return -1;
    }
    return 0;
}

/* See vm.h: SHUTDOWN, nobody waiting for its OK. */
int vm_agent_shutdown(struct vm_agent *a) {
    uint8_t frame[AGENT_HDR_LEN];
    struct sbx_err err;
    struct vm_req *r = query_new(a, Q_SHUTDOWN, 0, NULL, QUERY_TIMEOUT_MS, &err);
    if (r == NULL)
        return -1;
    size_t n = agent_enc_empty(frame, sizeof frame, AGENT_SHUTDOWN, r->id);
    if (n == 0 || vm_agent_send(a, frame, n) != 0) {
        vm_agent_drop(a, r);
        return -1;
    }
    return 0;
}

/* See vm.h: an exec gets KILL and is forgotten; a query is forgotten. */
int vm_agent_cancel(struct vm_agent *a, uint64_t key) {
    uint8_t frame[AGENT_HDR_LEN];
    struct vm_req *r = vm_agent_find_key(a, key);
    if (r == NULL)
        return 0;
    if (r->ops == &EXEC_OPS) {
        size_t n = agent_enc_empty(frame, sizeof frame, AGENT_KILL, r->id);
        if (n > 0)
            (void)vm_agent_send(a, frame, n);
    }
    vm_agent_drop(a, r);
    return 1;
}
