/* The connection to the guest agent: the virtio-serial port's unix socket in the sandbox
 * folder (agent.sock, qemu listens). Bytes in go through the protocol's incremental
 * decoder (vmproto/agent_proto.h) into frames handed to the request they name; bytes out
 * wait in an evbuffer. Everything is non-blocking on the loop.
 *
 * A guest is hostile: a frame length out of range, a malformed HELLO or an answer to no
 * request drops the connection (pending requests answered with an error) and a new one
 * is tried a second later with a new HELLO, which resets the guest's framing. Reads are
 * bounded per callback; while the bytes queued for the guest pass a bound, reading stops
 * (virtio-serial then blocks the guest's writes), so nothing is dropped and memory stays
 * bounded. */
#define _GNU_SOURCE
#include "backends/vm/vm_agent.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/core.h"
#include "core/sandbox.h"
#include "util/log.h"

#define READ_PER_CALLBACK (256u * 1024u) /* then back to the loop */
#define OUT_HIGH (4u << 20)              /* queued for the guest: stop reading above */
#define RETRY_MS 250
#define PENDING_MAX (16u << 20)

struct vm_agent {
    struct vm_state *vs;
    int fd;
    struct event *rev, *wev, *retry;
    struct agent_dec dec;
    uint8_t *dbuf;
    struct evbuffer *out;
    struct evbuffer *pending; /* frames of requests made before HELLO was answered */
    int ready;              /* HELLO answered */
    uint32_t hello_id;
    uint32_t next_id;
    struct vm_req *reqs;
};

static void on_read(evutil_socket_t fd, short what, void *arg);
static void on_write(evutil_socket_t fd, short what, void *arg);
static void schedule_retry(struct vm_agent *a);

/* See vm_agent.h. */
struct vm_state *vm_agent_vm(const struct vm_agent *a) { return a->vs; }
int vm_agent_ready(const struct vm_agent *a) { return a != NULL && a->ready && a->fd >= 0; }
size_t vm_agent_backlog(const struct vm_agent *a) { return evbuffer_get_length(a->out); }

/* Fails every request: answered with why (answer) or dropped; the main workload's
 * request stays when keep_main (a reconnect: the guest keeps running it). */
static void fail_all(struct vm_agent *a, const char *why, int answer, int keep_main) {
    struct vm_req **pp = &a->reqs;
    while (*pp != NULL) {
        struct vm_req *r = *pp;
        if (keep_main && r->is_main) {
            pp = &r->next;
            continue;
        }
        *pp = r->next;
        r->ops->fail(r, why, answer);
        r->ops->free(r);
        free(r);
    }
}

/* Closes the socket and its events; the table is left alone. */
static void disconnect(struct vm_agent *a) {
    if (a->rev != NULL)
        event_free(a->rev);
    if (a->wev != NULL)
        event_free(a->wev);
    a->rev = a->wev = NULL;
    if (a->fd >= 0)
        close(a->fd);
    a->fd = -1;
    a->ready = 0;
    evbuffer_drain(a->out, evbuffer_get_length(a->out));
    agent_dec_reset(&a->dec);
}

/* Sends a frame on the connection itself (HELLO goes before what waits). */
static int send_now(struct vm_agent *a, const void *frame, size_t len) {
    if (a->fd < 0 || evbuffer_add(a->out, frame, len) != 0)
        return -1;
    event_add(a->wev, NULL);
    return 0;
}

/* The connection broke or the guest misbehaved: pending requests fail with why, the
 * main workload's stays (its frames continue after the next HELLO), and a new
 * connection is tried later. */
static void broken(struct vm_agent *a, const char *why) {
    SBX_WARN("vm agent connection", "id=%s why=%s", a->vs->sb->id, why);
    disconnect(a);
    evbuffer_drain(a->pending, evbuffer_get_length(a->pending));
    fail_all(a, why, 1, 1);
    schedule_retry(a);
}

/* Connects (non-blocking) and sends HELLO. 0, or -1 (not there yet: retry later). */
static int connect_agent(struct vm_agent *a) {
    uint8_t frame[64];
    int fd = vm_connect(a->vs, "agent.sock");
    if (fd < 0)
        return -1;
    struct event_base *base = a->vs->sb->core->base;
    a->fd = fd;
    a->rev = event_new(base, fd, EV_READ | EV_PERSIST, on_read, a);
    a->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, a);
    if (a->rev == NULL || a->wev == NULL || event_add(a->rev, NULL) != 0) {
        disconnect(a);
        return -1;
    }
    a->hello_id = a->next_id++;
    size_t n = agent_enc_hello_req(frame, sizeof frame, a->hello_id, AGENT_PROTO_VERSION,
                                   AGENT_PROTO_VERSION);
    if (n == 0 || send_now(a, frame, n) != 0) {
        disconnect(a);
        return -1;
    }
    return 0;
}

/* Retry timer: connect again unless the VM is going away. */
static void on_retry(evutil_socket_t fd, short what, void *arg) {
    struct vm_agent *a = arg;
    (void)fd;
    (void)what;
    if (a->fd >= 0 || a->vs->phase == VM_GONE)
        return;
    if (connect_agent(a) != 0)
        schedule_retry(a);
}

/* Arms the retry timer. */
static void schedule_retry(struct vm_agent *a) {
    struct timeval tv = {0, RETRY_MS * 1000};
    if (a->retry != NULL)
        event_add(a->retry, &tv);
}

/* See vm.h: a connection for vs, connecting now or soon. NULL on no memory. */
struct vm_agent *vm_agent_open(struct vm_state *vs) {
    struct vm_agent *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    a->vs = vs;
    a->fd = -1;
    a->next_id = 1;
    a->dbuf = malloc(AGENT_MAX_PAYLOAD);
    a->out = evbuffer_new();
    a->pending = evbuffer_new();
    a->retry = evtimer_new(vs->sb->core->base, on_retry, a);
    if (a->dbuf == NULL || a->out == NULL || a->pending == NULL || a->retry == NULL) {
        vm_agent_close(a, 0);
        return NULL;
    }
    agent_dec_init(&a->dec, a->dbuf, AGENT_MAX_PAYLOAD);
    if (connect_agent(a) != 0)
        schedule_retry(a);
    return a;
}

/* See vm.h. */
void vm_agent_close(struct vm_agent *a, int answer) {
    if (a == NULL)
        return;
    disconnect(a);
    fail_all(a, "the virtual machine is gone", answer, 0);
    if (a->retry != NULL)
        event_free(a->retry);
    if (a->out != NULL)
        evbuffer_free(a->out);
    if (a->pending != NULL)
        evbuffer_free(a->pending);
    free(a->dbuf);
    free(a);
}

/* See vm_agent.h. Before HELLO is answered frames wait (at most PENDING_MAX bytes). */
int vm_agent_send(struct vm_agent *a, const void *frame, size_t len) {
    if (a->ready)
        return send_now(a, frame, len);
    if (evbuffer_get_length(a->pending) + len > PENDING_MAX)
        return -1;
    return evbuffer_add(a->pending, frame, len);
}

/* See vm_agent.h. */
void vm_agent_add(struct vm_agent *a, struct vm_req *r) {
    r->a = a;
    if (!r->is_main) {
        r->id = a->next_id++;
        if (a->next_id == 0)
            a->next_id = 1;
    }
    r->next = a->reqs;
    a->reqs = r;
}

/* See vm_agent.h. */
void vm_agent_drop(struct vm_agent *a, struct vm_req *r) {
    for (struct vm_req **pp = &a->reqs; *pp != NULL; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    r->ops->free(r);
    free(r);
}

/* See vm_agent.h. */
struct vm_req *vm_agent_find_key(struct vm_agent *a, uint64_t key) {
    for (struct vm_req *r = a->reqs; r != NULL; r = r->next)
        if (!r->is_main && r->key == key)
            return r;
    return NULL;
}

/* The HELLO answer: kept in vs, and vm.c told. -1 if malformed or a version we do not
 * speak. */
static int on_hello(struct vm_agent *a, const struct agent_frame *f) {
    struct agent_hello_resp h;
    if (agent_parse_hello_resp(f, &h) != 0 || h.version != AGENT_PROTO_VERSION)
        return -1;
    size_t n = h.kernel_release.len < sizeof a->vs->guest_kernel - 1
                   ? h.kernel_release.len : sizeof a->vs->guest_kernel - 1;
    memcpy(a->vs->guest_kernel, h.kernel_release.ptr, n);
    a->vs->guest_kernel[n] = '\0';
    a->ready = 1;
    if (evbuffer_get_length(a->pending) > 0) {
        evbuffer_add_buffer(a->out, a->pending);
        event_add(a->wev, NULL);
    }
    vm_on_agent_hello(a->vs);
    return 0;
}

/* One frame from the guest: the HELLO answer, or an answer to a request. A frame for an
 * id no request has is ignored (a request abandoned meanwhile). -1: drop the connection. */
static int dispatch(struct vm_agent *a, const struct agent_frame *f) {
    SBX_DEBUG("vm agent frame", "id=%s type=%s req=%u len=%u", a->vs->sb->id,
              agent_type_name(f->type), f->id, f->payload_len);
    if (!a->ready) {
        if (f->id != a->hello_id)
            return 0; /* left over from before our HELLO */
        if (f->type == AGENT_ERR)
            return -1;
        return f->type == AGENT_HELLO ? on_hello(a, f) : -1;
    }
    for (struct vm_req *r = a->reqs; r != NULL; r = r->next)
        if (r->id == f->id) {
            if (r->ops->frame(r, f))
                vm_agent_drop(a, r);
            return 0;
        }
    return 0;
}

/* Readable: bounded reads through the decoder. Stops reading while the bytes for the
 * guest pile up. */
static void on_read(evutil_socket_t fd, short what, void *arg) {
    struct vm_agent *a = arg;
    uint8_t buf[65536];
    size_t total = 0;
    (void)what;
    while (total < READ_PER_CALLBACK && a->fd == fd) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == 0) {
            broken(a, "the agent closed the connection");
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            broken(a, strerror(errno));
            return;
        }
        total += (size_t)n;
        size_t off = 0;
        while (off < (size_t)n && a->fd == fd) {
            struct agent_frame f;
            size_t used = 0;
            enum agent_dec_status st = agent_dec_feed(&a->dec, buf + off, (size_t)n - off, &used, &f);
            off += used;
            if (st == AGENT_DEC_ERROR) {
                broken(a, "the agent sent a frame length out of range");
                return;
            }
            if (st == AGENT_DEC_NEED)
                break;
            if (dispatch(a, &f) != 0) {
                broken(a, "the agent sent a malformed HELLO answer");
                return;
            }
        }
    }
    if (a->fd == fd && evbuffer_get_length(a->out) > OUT_HIGH)
        event_del(a->rev);
}

/* Writable: flushes what is queued; reading resumes once the queue is short again. */
static void on_write(evutil_socket_t fd, short what, void *arg) {
    struct vm_agent *a = arg;
    (void)what;
    int n = evbuffer_write(a->out, fd);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
        broken(a, strerror(errno));
        return;
    }
    if (evbuffer_get_length(a->out) == 0)
        event_del(a->wev);
    if (evbuffer_get_length(a->out) <= OUT_HIGH / 2)
        event_add(a->rev, NULL);
}
