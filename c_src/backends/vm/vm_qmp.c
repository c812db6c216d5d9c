/* QMP, qemu's JSON control socket (qmp.sock in the sandbox folder), non-blocking on the
 * loop: connect (retried while qemu comes up), the greeting, qmp_capabilities, then
 * commands with numeric ids answered through callbacks. query-kvm says which accel qemu
 * really uses. The SHUTDOWN event (the guest powered off, or quit) is noted in the VM's
 * state so that its exit can be told from a kill. Lines are bounded: a longer one drops
 * the connection. */
#define _GNU_SOURCE
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "backends/vm/vm.h"
#include "core/core.h"
#include "core/pause.h"
#include "core/sandbox.h"

#define LINE_MAX_BYTES (256u * 1024u)
#define RETRY_MS 100

struct qcmd {
    struct qcmd *next;
    unsigned id;
    uint64_t key;
    vm_qmp_done_fn done;
    void *arg;
};

struct vm_qmp {
    struct vm_state *vs;
    int fd;
    int ready;              /* capabilities accepted */
    struct event *rev, *wev, *retry;
    struct evbuffer *in, *out, *pending; /* pending: commands before ready */
    struct qcmd *cmds;
    unsigned next_id;
    char accel[8];
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);

/* Answers every command with why and forgets them. */
static void fail_cmds(struct vm_qmp *q, const char *why) {
    while (q->cmds != NULL) {
        struct qcmd *c = q->cmds;
        q->cmds = c->next;
        if (c->done != NULL)
            c->done(q->vs, c->key, why, c->arg);
        free(c);
    }
}

/* Closes the socket (commands are answered by the caller). */
static void disconnect(struct vm_qmp *q) {
    if (q->rev != NULL)
        event_free(q->rev);
    if (q->wev != NULL)
        event_free(q->wev);
    q->rev = q->wev = NULL;
    if (q->fd >= 0)
        close(q->fd);
    q->fd = -1;
    q->ready = 0;
    evbuffer_drain(q->in, evbuffer_get_length(q->in));
    evbuffer_drain(q->out, evbuffer_get_length(q->out));
}

/* Queues a line for qemu. */
static void send_line(struct vm_qmp *q, struct evbuffer *to, const char *line) {
    evbuffer_add_printf(to, "%s\r\n", line);
    if (to == q->out && q->wev != NULL)
        event_add(q->wev, NULL);
}

/* Connects; 0 or -1 (not there yet). */
static int try_connect(struct vm_qmp *q) {
    int fd = vm_connect(q->vs, "qmp.sock");
    if (fd < 0)
        return -1;
    struct event_base *base = q->vs->sb->core->base;
    q->fd = fd;
    q->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, q);
    q->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, q);
    if (q->rev == NULL || q->wev == NULL || event_add(q->rev, NULL) != 0) {
        disconnect(q);
        return -1;
    }
    send_line(q, q->out, "{\"execute\":\"qmp_capabilities\",\"id\":0}");
    return 0;
}

/* Retry timer while qemu has not made its socket yet. */
static void on_retry(evutil_socket_t fd, short what, void *arg) {
    struct vm_qmp *q = arg;
    struct timeval tv = {0, RETRY_MS * 1000};
    (void)fd;
    (void)what;
    if (q->fd < 0 && q->vs->phase != VM_GONE && try_connect(q) != 0)
        event_add(q->retry, &tv);
}

/* See vm.h. */
struct vm_qmp *vm_qmp_open(struct vm_state *vs) {
    struct vm_qmp *q = calloc(1, sizeof *q);
    struct timeval tv = {0, RETRY_MS * 1000};
    if (q == NULL)
        return NULL;
    q->vs = vs;
    q->fd = -1;
    q->next_id = 1;
    q->in = evbuffer_new();
    q->out = evbuffer_new();
    q->pending = evbuffer_new();
    q->retry = evtimer_new(vs->sb->core->base, on_retry, q);
    if (q->in == NULL || q->out == NULL || q->pending == NULL || q->retry == NULL) {
        vm_qmp_close(q, 0);
        return NULL;
    }
    if (try_connect(q) != 0)
        event_add(q->retry, &tv);
    return q;
}

/* See vm.h. Commands still waiting are answered with an error (answer), or dropped with
 * their arg freed. */
void vm_qmp_close(struct vm_qmp *q, int answer) {
    if (q == NULL)
        return;
    disconnect(q);
    if (answer)
        fail_cmds(q, "the virtual machine is gone");
    while (q->cmds != NULL) {
        struct qcmd *c = q->cmds;
        q->cmds = c->next;
        free(c->arg);
        free(c);
    }
    if (q->retry != NULL)
        event_free(q->retry);
    if (q->in != NULL)
        evbuffer_free(q->in);
    if (q->out != NULL)
        evbuffer_free(q->out);
    if (q->pending != NULL)
        evbuffer_free(q->pending);
    free(q);
}

/* See vm.h. */
const char *vm_qmp_accel(const struct vm_qmp *q) { return q != NULL ? q->accel : ""; }

/* See vm.h. */
int vm_qmp_command(struct vm_qmp *q, const char *cmd, uint64_t key, vm_qmp_done_fn done,
                   void *arg) {
    char line[160];
    struct qcmd *c;
    if (q == NULL || (q->fd < 0 && q->vs->phase == VM_GONE) || (c = calloc(1, sizeof *c)) == NULL)
        return -1;
    c->id = q->next_id++;
    c->key = key;
    c->done = done;
    c->arg = arg;
    c->next = q->cmds;
    q->cmds = c;
    snprintf(line, sizeof line, "{\"execute\":\"%s\",\"id\":%u}", cmd, c->id);
    send_line(q, q->ready ? q->out : q->pending, line);
    return 0;
}

/* See vm.h. */
void *vm_qmp_forget(struct vm_qmp *q, uint64_t key) {
    if (q == NULL)
        return NULL;
    for (struct qcmd *c = q->cmds; c != NULL; c = c->next)
        if (c->key == key && c->done != NULL) {
            void *arg = c->arg;
            c->done = NULL;
            c->arg = NULL;
            return arg;
        }
    return NULL;
}

/* The answer to query-kvm (id 0 is capabilities; the kvm query is sent right after). */
static void note_kvm(struct vm_qmp *q, json_t *ret) {
    json_t *en = json_object_get(ret, "enabled");
    snprintf(q->accel, sizeof q->accel, "%s", json_is_true(en) ? "kvm" : "tcg");
}

/* One message from qemu. */
static void on_message(struct vm_qmp *q, json_t *j) {
    json_t *idj = json_object_get(j, "id");
    const char *ev = json_string_value(json_object_get(j, "event"));
    if (ev != NULL) {
        if (strcmp(ev, "SHUTDOWN") == 0)
            q->vs->qmp_shutdown_seen = 1;
        return;
    }
    if (!json_is_integer(idj))
        return; /* the greeting */
    unsigned id = (unsigned)json_integer_value(idj);
    if (id == 0) {
        q->ready = 1;
        evbuffer_add_buffer(q->out, q->pending);
        send_line(q, q->out, "{\"execute\":\"query-kvm\",\"id\":4000000000}");
        if (q->vs->adopted)
            send_line(q, q->out, "{\"execute\":\"query-status\",\"id\":4000000001}");
        return;
    }
    if (id == 4000000001u) { /* adopted: stopped by an earlier run's pause? */
        json_t *run = json_object_get(json_object_get(j, "return"), "running");
        if (json_is_boolean(run))
            sbx_sandbox_pause_seen(q->vs->sb, !json_is_true(run));
        return;
    }
    if (id == 4000000000u) {
        note_kvm(q, json_object_get(j, "return"));
        return;
    }
    for (struct qcmd **pp = &q->cmds; *pp != NULL; pp = &(*pp)->next) {
        struct qcmd *c = *pp;
        if (c->id != id)
            continue;
        *pp = c->next;
        json_t *e = json_object_get(j, "error");
        const char *desc = json_string_value(json_object_get(e, "desc"));
        if (c->done != NULL)
            c->done(q->vs, c->key, e != NULL ? (desc != NULL ? desc : "QMP error") : NULL, c->arg);
        free(c);
        return;
    }
}

/* Readable: whole lines parsed. End of file: qemu is going (the pidfd says when). */
static void on_read(evutil_socket_t fd, short what, void *arg) {
    struct vm_qmp *q = arg;
    (void)what;
    int n = evbuffer_read(q->in, fd, 65536);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            disconnect(q);
            fail_cmds(q, "qemu closed its QMP socket");
        }
        return;
    }
    for (;;) {
        size_t len;
        char *line = evbuffer_readln(q->in, &len, EVBUFFER_EOL_CRLF);
        if (line == NULL)
            break;
        json_t *j = json_loadb(line, len, 0, NULL);
        free(line);
        if (j != NULL) {
            on_message(q, j);
            json_decref(j);
        }
        if (q->fd != fd)
            return;
    }
    if (evbuffer_get_length(q->in) > LINE_MAX_BYTES) {
        disconnect(q);
        fail_cmds(q, "qemu sent a QMP line past the bound");
    }
}

/* Writable: flush. */
static void on_write(evutil_socket_t fd, short what, void *arg) {
    struct vm_qmp *q = arg;
    (void)what;
    if (evbuffer_write(q->out, fd) < 0 && errno != EAGAIN && errno != EINTR) {
        disconnect(q);
        fail_cmds(q, "cannot write to qemu's QMP socket");
        return;
    }
    if (evbuffer_get_length(q->out) == 0)
        event_del(q->wev);
}
