/* exec in a container: exec create, exec start (stdout/stderr demultiplexed, each kept up
 * to max_output_bytes), exit code from exec inspect. The deadline kills the command's
 * host process (exec inspect gives its pid; sandboxd runs as root in the host's pid
 * namespace) and answers timeout.
 *
 * stdin: the Engine API needs a hijacked connection to write to an exec's stdin, which
 * net/http does not do. The bytes are put into the container as a file with the archive
 * endpoint (/tmp/.sbx-stdin-<n>), and the command runs as
 *   /bin/sh -c 'exec <"$0"; rm -f "$0"; exec "$@"' FILE CMD...
 * so exec with stdin needs /bin/sh in the image. */
#define _GNU_SOURCE
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "backends/docker/dk.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "util/clock.h"
#include "util/log.h"

#define GRACE_AFTER_KILL_MS 2000

struct dk_exec {
    struct dk_exec *next;
    struct dk_state *ds;
    uint64_t key;
    sbx_exec_done_fn done;
    char eid[DK_CID_MAX];
    struct dk_op *op;          /* the request under way */
    char *create_body;         /* exec create JSON */
    struct sbx_demux demux;
    char *buf[2];
    size_t len[2];
    size_t max;
    int truncated;
    int timed_out;
    int inspect_tries;
    struct event *timer;       /* deadline, then the wait after the kill */
    int64_t start_ms;
};

static void exec_inspect(struct dk_exec *x);

/* Frees x (unlinked, its request cancelled or over). */
static void exec_free(struct dk_exec *x) {
    if (x->timer != NULL)
        event_free(x->timer);
    sbx_demux_release(&x->demux);
    free(x->buf[0]);
    free(x->buf[1]);
    free(x->create_body);
    free(x);
}

/* Unlinks x from its sandbox's list. */
static void exec_unlink(struct dk_exec *x) {
    for (struct dk_exec **pp = &x->ds->execs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == x) {
            *pp = x->next;
            return;
        }
    }
}

/* The exec's host process, from exec inspect, gets SIGKILL (engine-level request: it
 * outlives the exec and its sandbox). */
static void kill_done(struct dk_op *op, int status, const char *body, size_t len,
                      const char *err) {
    (void)err;
    if (status != 200)
        return;
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *pid = json_object_get(j, "Pid");
    /* Only a plausible pid (pid_max is at most 2^22): a bigger value cast to pid_t could
     * be -1 or negative, and kill() would then signal every process or a whole group. */
    if (json_is_true(json_object_get(j, "Running")) && json_is_integer(pid) &&
        json_integer_value(pid) > 1 && json_integer_value(pid) <= 4194304) {
        SBX_INFO("exec killed", "exec=%.12s pid=%lld", op->tag, (long long)json_integer_value(pid));
        kill((pid_t)json_integer_value(pid), SIGKILL);
    }
    json_decref(j);
}

/* Starts the kill of exec eid. */
static void kill_exec(const char *eid) {
    char path[200];
    struct dk_engine *e = dk_engine_peek();
    if (eid[0] == '\0' || e == NULL)
        return;
    snprintf(path, sizeof path, "/exec/%s/json", eid);
    struct dk_op *op = dk_request(e, NULL, "GET", path, 0, NULL, 0, NULL, 10000, 0, NULL,
                                  kill_done, NULL);
    if (op != NULL)
        snprintf(op->tag, sizeof op->tag, "%s", eid);
}

/* Answers through done (result valid during the call), then frees x. */
static void exec_finish(struct dk_exec *x, int exit_code, const struct sbx_err *err) {
    struct sbx_exec_result r;
    memset(&r, 0, sizeof r);
    exec_unlink(x);
    dk_cancel(dk_engine_peek(), x->op);
    x->op = NULL;
    r.exit_code = exit_code;
    r.stdout_data = x->buf[0] != NULL ? x->buf[0] : "";
    r.stdout_len = x->len[0];
    r.stderr_data = x->buf[1] != NULL ? x->buf[1] : "";
    r.stderr_len = x->len[1];
    r.duration_ms = sbx_mono_ms() - x->start_ms;
    r.truncated = x->truncated;
    r.timed_out = x->timed_out;
    /* x is unlinked: whatever done does to the sandbox, x stays ours until freed. */
    x->done(x->key, err != NULL ? NULL : &r, err);
    exec_free(x);
}

/* Fails x with the answer's error. */
static void exec_fail(struct dk_exec *x, int status, const char *body, const char *terr) {
    struct sbx_err err;
    memset(&err, 0, sizeof err);
    if (status == 409)
        err.reason_atom = "not_running";
    else
        dk_set_http_err(&err, status, body, terr);
    exec_finish(x, -1, &err);
}

/* Arms x's timer for ms. */
static void arm(struct dk_exec *x, int64_t ms) {
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(x->timer, &tv);
}

/* Exec inspect answered: the exit code (retried briefly while Docker still says running). */
static void inspect_done(struct dk_op *op, int status, const char *body, size_t len,
                         const char *err) {
    struct dk_exec *x = op->arg;
    x->op = NULL;
    if (status != 200) {
        exec_fail(x, status, body, err);
        return;
    }
    json_t *j = json_loadb(body, len, 0, NULL);
    json_t *code = json_object_get(j, "ExitCode");
    int running = json_is_true(json_object_get(j, "Running"));
    int exit_code = json_is_integer(code) ? (int)json_integer_value(code) : -1;
    json_decref(j);
    if (running && x->inspect_tries++ < 50) {
        exec_inspect(x);
        return;
    }
    exec_finish(x, exit_code, NULL);
}

/* Inspects the exec for its exit code. */
static void exec_inspect(struct dk_exec *x) {
    char path[200];
    snprintf(path, sizeof path, "/exec/%s/json", x->eid);
    x->op = dk_request(dk_engine_peek(), x->ds, "GET", path, 0, NULL, 0, NULL, 15000, 0, NULL,
                       inspect_done, x);
    if (x->op == NULL)
        exec_fail(x, 0, NULL, "cannot send the exec inspect request");
}

/* Keeps a frame of output, up to max per stream. */
static int exec_emit(void *arg, enum sbx_demux_stream stream, const char *data, size_t len) {
    struct dk_exec *x = arg;
    int i = stream == SBX_DEMUX_STDOUT ? 0 : 1;
    size_t room = x->max > x->len[i] ? x->max - x->len[i] : 0;
    size_t take = len < room ? len : room;
    if (take < len)
        x->truncated = 1;
    if (take > 0) {
        char *nb = realloc(x->buf[i], x->len[i] + take);
        if (nb == NULL) {
            x->truncated = 1;
            return 0;
        }
        x->buf[i] = nb;
        memcpy(nb + x->len[i], data, take);
        x->len[i] += take;
    }
    return 0;
}

/* Exec start stream data. */
static void start_data(struct dk_op *op, const char *buf, size_t len) {
    struct dk_exec *x = op->arg;
    sbx_demux_feed(&x->demux, buf, len, exec_emit, x, NULL);
}

/* The exec's output ended: the command finished (or was killed). */
static void start_done(struct dk_op *op, int status, const char *body, size_t len,
                       const char *err) {
    struct dk_exec *x = op->arg;
    (void)len;
    x->op = NULL;
    if (status == 0 || status >= 300) {
        exec_fail(x, status, body, err);
        return;
    }
    if (x->timed_out) {
        exec_finish(x, -1, NULL);
        return;
    }
    exec_inspect(x);
}

/* Exec create answered: start it. */
static void create_done(struct dk_op *op, int status, const char *body, size_t len,
                        const char *err) {
    struct dk_exec *x = op->arg;
    static const char start_body[] = "{\"Detach\":false,\"Tty\":false}";
    char path[200];
    x->op = NULL;
    json_t *j = status == 201 ? json_loadb(body, len, 0, NULL) : NULL;
    const char *id = json_string_value(json_object_get(j, "Id"));
    if (id == NULL || strlen(id) >= DK_CID_MAX) {
        json_decref(j);
        exec_fail(x, status == 201 ? 500 : status, body, err);
        return;
    }
    snprintf(x->eid, sizeof x->eid, "%s", id);
    json_decref(j);
    snprintf(path, sizeof path, "/exec/%s/start", x->eid);
    x->op = dk_request(dk_engine_peek(), x->ds, "POST", path, 0, start_body, sizeof start_body - 1,
                       NULL, 0, 0, start_data, start_done, x);
    if (x->op == NULL)
        exec_fail(x, 0, NULL, "cannot send the exec start request");
}

/* Sends exec create. */
static void exec_create(struct dk_exec *x) {
    char path[200];
    snprintf(path, sizeof path, "/containers/%s/exec", x->ds->cid);
    x->op = dk_request(dk_engine_peek(), x->ds, "POST", path, 0, x->create_body,
                       strlen(x->create_body), NULL, 30000, 0, NULL, create_done, x);
    if (x->op == NULL)
        exec_fail(x, 0, NULL, "cannot send the exec create request");
}

/* The stdin file is in the container: create the exec. */
static void stdin_done(struct dk_op *op, int status, const char *body, size_t len,
                       const char *err) {
    struct dk_exec *x = op->arg;
    (void)len;
    x->op = NULL;
    if (status != 200) {
        exec_fail(x, status, body, err);
        return;
    }
    exec_create(x);
}

/* Deadline: kill the command and wait a little for its stream; then give up on it. */
static void timer_cb(evutil_socket_t fd, short what, void *arg) {
    struct dk_exec *x = arg;
    (void)fd;
    (void)what;
    if (!x->timed_out) {
        x->timed_out = 1;
        if (x->eid[0] == '\0') {
            exec_finish(x, -1, NULL);
            return;
        }
        kill_exec(x->eid);
        arm(x, GRACE_AFTER_KILL_MS);
        return;
    }
    /* Killed, but something still holds its output open: answer now. */
    exec_finish(x, -1, NULL);
}

/* Builds the exec create body. NULL when a string is not UTF-8 or out of memory. */
static char *create_json(struct dk_state *ds, const struct sbx_strv *cmd,
                         const struct sbx_exec_opts *opts, const char *stdin_file) {
    json_t *b = json_object(), *c = json_array(), *env = json_array();
    char *text = NULL, buf[1200];
    int bad = b == NULL || c == NULL || env == NULL;
    if (bad)
        goto done;
    if (stdin_file != NULL) {
        bad |= json_array_append_new(c, json_string("/bin/sh"));
        bad |= json_array_append_new(c, json_string("-c"));
        bad |= json_array_append_new(c, json_string("exec <\"$0\"; rm -f \"$0\"; exec \"$@\""));
        bad |= json_array_append_new(c, json_string(stdin_file));
    }
    for (size_t i = 0; i < cmd->n; i++)
        bad |= json_array_append_new(c, json_string(cmd->v[i]));
    for (size_t i = 0; i < opts->env.n; i++) {
        char *s = NULL;
        if (asprintf(&s, "%s=%s", opts->env.v[i].key, opts->env.v[i].value) < 0) {
            bad = 1;
            break;
        }
        bad |= json_array_append_new(env, json_string(s));
        free(s);
    }
    bad |= json_object_set_new(b, "AttachStdin", json_false());
    bad |= json_object_set_new(b, "AttachStdout", json_true());
    bad |= json_object_set_new(b, "AttachStderr", json_true());
    bad |= json_object_set_new(b, "Tty", json_false());
    bad |= json_object_set(b, "Cmd", c);
    bad |= json_object_set(b, "Env", env);
    const char *cwd = opts->cwd != NULL ? opts->cwd : ds->sb->cfg.cwd;
    if (cwd != NULL) {
        if (cwd[0] == '/')
            snprintf(buf, sizeof buf, "%s", cwd);
        else
            snprintf(buf, sizeof buf, "/app/%s", cwd);
        bad |= json_object_set_new(b, "WorkingDir", json_string(buf));
    }
    if (!bad)
        text = json_dumps(b, JSON_COMPACT);
done:
    json_decref(b);
    json_decref(c);
    json_decref(env);
    return text;
}

/* See dk.h (backend exec). done(key) runs later, never inside this call. */
int dk_exec(struct sbx_sandbox *sb, const struct sbx_strv *cmd, const struct sbx_exec_opts *opts,
            uint64_t key, sbx_exec_done_fn done, struct sbx_err *err) {
    struct dk_state *ds = sb->bstate;
    struct dk_engine *e = dk_engine_peek();
    struct dk_exec *x = NULL;
    char file[64];
    int rc = -1;
    if (!dk_engine_check_up(e, err))
        return -1;
    if (ds == NULL || ds->phase != DK_RUNNING || ds->end_pending || ds->cid[0] == '\0') {
        err->reason_atom = "not_running";
        return -1;
    }
    x = calloc(1, sizeof *x);
    if (x == NULL)
        goto oom;
    x->ds = ds;
    x->key = key;
    x->done = done;
    x->max = opts->max_output_bytes;
    x->start_ms = sbx_mono_ms();
    sbx_demux_init(&x->demux, 0);
    snprintf(file, sizeof file, "/tmp/.sbx-stdin-%llu", (unsigned long long)++e->stdin_seq);
    x->create_body = create_json(ds, cmd, opts, opts->stdin_data != NULL ? file : NULL);
    x->timer = evtimer_new(sb->core->base, timer_cb, x);
    if (x->create_body == NULL || x->timer == NULL) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "the command does not make an exec (strings must be UTF-8)");
        goto done;
    }
    x->next = ds->execs;
    ds->execs = x;
    if (opts->stdin_data != NULL) {
        x->op = dk_put_file(e, ds, file, opts->stdin_data, opts->stdin_len, stdin_done, x, err);
        if (x->op == NULL) {
            exec_unlink(x);
            goto done;
        }
    } else {
        char path[200];
        snprintf(path, sizeof path, "/containers/%s/exec", ds->cid);
        x->op = dk_request(e, ds, "POST", path, 0, x->create_body, strlen(x->create_body), NULL,
                           30000, 0, NULL, create_done, x);
        if (x->op == NULL) {
            exec_unlink(x);
            err->reason_atom = "backend";
            snprintf(err->detail, sizeof err->detail, "cannot send the exec create request");
            goto done;
        }
    }
    arm(x, opts->timeout_ms > 0 ? opts->timeout_ms : 30000);
    x = NULL;
    rc = 0;
    goto done;
oom:
    err->reason_atom = "backend";
    snprintf(err->detail, sizeof err->detail, "out of memory");
done:
    if (x != NULL)
        exec_free(x);
    return rc;
}

/* See dk.h (backend exec_cancel): the command is killed, done never runs. */
int dk_exec_cancel(struct dk_state *ds, uint64_t key) {
    for (struct dk_exec *x = ds->execs; x != NULL; x = x->next) {
        if (x->key == key) {
            exec_unlink(x);
            dk_cancel(dk_engine_peek(), x->op);
            kill_exec(x->eid);
            exec_free(x);
            return 1;
        }
    }
    return 0;
}

/* See dk.h. Every exec is killed and freed; answered with an error when answer is set
 * (release), silently dropped otherwise (detach). */
void dk_exec_release(struct dk_state *ds, int answer) {
    struct sbx_err gone = {.reason_atom = "backend", .detail = "the sandbox was destroyed"};
    while (ds->execs != NULL) {
        struct dk_exec *x = ds->execs;
        ds->execs = x->next;
        dk_cancel(dk_engine_peek(), x->op);
        if (answer)
            kill_exec(x->eid);
        sbx_exec_done_fn done = x->done;
        uint64_t key = x->key;
        exec_free(x);
        if (answer)
            done(key, NULL, &gone);
    }
}
