/* The host connection (see session.h). Input is read in 64 KiB blocks into `in` and decoded
 * frame by frame; decoding pauses while the output queue could not take a largest answer or a
 * command's stdin is backed up (the port is not read then: virtio-serial holds the host back).
 * A bad frame length puts the stream in resync: bytes are skipped until a HELLO header
 * (len 13, type HELLO) shows up, which is how a new connection starts.
 * The port is watched through an edge-triggered epoll fd (itself in the loop's poll set):
 * while the host is away the port reports POLLHUP all the time, and edge triggering reports
 * it once, then the reconnection, without a blind retry interval during which a short
 * connection could come and go unseen. So `readable` and `writable` remember what the last
 * edges said until a read or write hits EAGAIN. */
#include "session.h"

#include <errno.h>
#include <sys/epoll.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cmd.h"
#include "files.h"
#include "log.h"
#include "procinfo.h"

static int port = -1;
static int ep = -1;      /* epoll fd watching the port, edge-triggered */
static int readable;     /* the port may have input (until read says EAGAIN) */
static int writable;     /* the port may take output (until write says EAGAIN) */
static struct agent_dec dec;
static uint8_t dec_buf[AGENT_MAX_PAYLOAD];
static uint8_t in[64 * 1024];
static size_t in_pos, in_len;
static int resync;       /* skipping to the next HELLO header */
static int bad_stream;   /* resync because of a bad frame length (logged when it ends) */
static int hello_done;   /* this connection said HELLO */
static int new_conn = 1; /* no HELLO since the host was last away */
static int host_away;    /* POLLHUP seen: the host is not connected */
static int shutdown_asked;
static struct agent_exec_req exec_req;
static uint8_t frame[512];

static const uint8_t hello_hdr[5] = {0, 0, 0, 13, AGENT_HELLO};
/* Bytes of a partial frame to decode again after a hangup (see on_hangup). */
static uint8_t replay[AGENT_HDR_LEN + AGENT_MAX_PAYLOAD];
static size_t replay_pos, replay_len;


int session_shutdown_asked(void) {
    return shutdown_asked;
}

/* A new connection: no partial frame, no HELLO yet, and everything up to the first HELLO
 * header skipped (bytes the previous connection left unread may still come first). */
static void stream_reset(void) {
    agent_dec_reset(&dec);
    in_pos = in_len = 0;
    hello_done = 0;
    resync = 1;
}

void session_init(int port_fd) {
    struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLHUP | EPOLLET, {.fd = port_fd}};
    port = port_fd;
    agent_dec_init(&dec, dec_buf, sizeof dec_buf);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, port, &ev) != 0)
        agent_log("epoll on the port: %s", strerror(errno));
    readable = writable = 1;
    stream_reset();
}

/* HELLO: version check, then the previous connection's state goes and the answer is put in
 * front of the queue (ahead of any main workload output waiting from before). */
static void on_hello(const struct agent_frame *f) {
    struct agent_hello_req h;
    struct utsname u;
    struct timespec ts = {0, 0};
    if (agent_parse_hello_req(f, &h) != 0) {
        agent_send_err(f->id, EPROTO, "malformed hello");
        return;
    }
    cmds_detach();
    files_reset();
    outq_reconnect(agent_outq(), AGENT_MAIN_ID, new_conn);
    new_conn = 0;
    if (h.min_version > AGENT_PROTO_VERSION || h.max_version < AGENT_PROTO_VERSION) {
        agent_log("hello: host speaks versions %u..%u, agent %u", h.min_version, h.max_version,
                  AGENT_PROTO_VERSION);
        agent_send_err(f->id, EPROTONOSUPPORT, "no common protocol version");
        hello_done = 0;
        return;
    }
    uname(&u);
    clock_gettime(CLOCK_BOOTTIME, &ts);
    struct agent_hello_resp r = {
        AGENT_PROTO_VERSION,
        {(const uint8_t *)u.release, (uint32_t)strlen(u.release)},
        {(const uint8_t *)AGENT_VERSION, (uint32_t)strlen(AGENT_VERSION)},
        (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000,
    };
    size_t n = agent_enc_hello_resp(frame, sizeof frame, f->id, &r);
    if (n == 0 || outq_push_front(agent_outq(), frame, n) != 0)
        agent_log("hello: cannot queue the answer");
    hello_done = 1;
    agent_log("hello: protocol %u, boot %llu ms", AGENT_PROTO_VERSION,
              (unsigned long long)r.boot_ms);
}

/* One request from the host. Anything malformed or unknown is answered ERR. */
static void dispatch(const struct agent_frame *f) {
    struct agent_str s;
    struct agent_write_req wq;
    int bad = 0;
    if (agent_debug)
        agent_log("<- %s id %u (%u bytes)", agent_type_name(f->type), f->id, f->payload_len);
    if (f->type == AGENT_HELLO) {
        on_hello(f);
        return;
    }
    if (!hello_done) {
        agent_send_err(f->id, EPROTO, "hello first");
        return;
    }
    switch (f->type) {
    case AGENT_EXEC:
        if (!(bad = agent_parse_exec(f, &exec_req)))
            cmd_exec(f->id, &exec_req);
        break;
    case AGENT_STDIN:
        if (!(bad = agent_parse_bytes(f, &s)))
            cmd_stdin(f->id, s);
        break;
    case AGENT_KILL:
        if (!(bad = agent_parse_empty(f)))
            cmd_kill(f->id);
        break;
    case AGENT_WRITE:
        if (!(bad = agent_parse_write(f, &wq)))
            files_write(f->id, &wq);
        break;
    case AGENT_DATA:
        if (!(bad = agent_parse_bytes(f, &s)))
            files_data(f->id, s);
        break;
    case AGENT_END:
        if (!(bad = agent_parse_empty(f)))
            files_end(f->id);
        break;
    case AGENT_READ:
        if (!(bad = agent_parse_read(f, &s)))
            files_read(f->id, s);
        break;
    case AGENT_PS:
        if (!(bad = agent_parse_empty(f)))
            procinfo_ps(f->id);
        break;
    case AGENT_METRICS:
        if (!(bad = agent_parse_empty(f)))
            procinfo_metrics(f->id);
        break;
    case AGENT_SHUTDOWN:
        if (!(bad = agent_parse_empty(f))) {
            agent_send(frame, agent_enc_empty(frame, sizeof frame, AGENT_OK, f->id));
            shutdown_asked = 1;
        }
        break;
    default:
        agent_send_err(f->id, ENOSYS, "unknown message type");
        break;
    }
    if (bad)
        agent_send_err(f->id, EINVAL, "malformed message");
}

/* In resync: skips input up to the next HELLO header (keeping a possible partial header at
 * the end). */
static void resync_scan(void) {
    while (in_pos < in_len) {
        size_t left = in_len - in_pos;
        if (left < sizeof hello_hdr) {
            if (memcmp(in + in_pos, hello_hdr, left) == 0)
                return; /* maybe the start of one: wait for more */
        } else if (memcmp(in + in_pos, hello_hdr, sizeof hello_hdr) == 0) {
            agent_dec_reset(&dec);
            resync = 0;
            if (bad_stream)
                agent_log("stream: resynchronised on a hello");
            bad_stream = 0;
            return;
        }
        in_pos++;
    }
}

/* Whether a request may be handled now (its answer will fit). */
static int can_take(void) {
    return outq_free(agent_outq()) >= INPUT_ROOM && !cmds_stdin_full() && !shutdown_asked;
}

/* Decodes buf[*pos..len) while requests may be taken; returns at the end of buf, when a bad
 * length puts the stream in resync, or when answers would not fit. */
static void decode(const uint8_t *buf, size_t *pos, size_t len) {
    while (*pos < len && !resync && can_take()) {
        struct agent_frame f;
        size_t used = 0;
        enum agent_dec_status st = agent_dec_feed(&dec, buf + *pos, len - *pos, &used, &f);
        *pos += used;
        if (st == AGENT_DEC_FRAME) {
            dispatch(&f);
        } else if (st == AGENT_DEC_ERROR) {
            agent_log("stream: bad frame length; waiting for the next hello");
            resync = 1;
            bad_stream = 1;
            hello_done = 0;
        }
    }
}

void session_pump(void) {
    if (replay_pos < replay_len) {
        decode(replay, &replay_pos, replay_len);
        if (resync)
            replay_pos = replay_len; /* the rest of it is skipped */
    }
    while (replay_pos >= replay_len && in_pos < in_len && can_take()) {
        if (resync) {
            resync_scan();
            if (resync)
                break;
        }
        decode(in, &in_pos, in_len);
    }
    if (in_pos == in_len)
        in_pos = in_len = 0;
    /* A partial HELLO header kept in resync: move it to the front so reading can go on. */
    if (in_pos > 0 && in_pos < in_len && in_len == sizeof in) {
        memmove(in, in + in_pos, in_len - in_pos);
        in_len -= in_pos;
        in_pos = 0;
    }
    if (!host_away && outq_used(agent_outq()) > 0) {
        int rc = outq_flush(agent_outq(), port);
        writable = rc == 0;
        if (rc < 0 && errno != EPIPE)
            agent_log("port write: %s", strerror(errno));
    }
}

int session_poll_fill(struct pollfd *pfd) {
    pfd->fd = ep;
    pfd->events = POLLIN;
    pfd->revents = 0;
    if (replay_pos < replay_len && can_take())
        return 0;
    if (host_away)
        return -1;
    if (readable && in_len < sizeof in && can_take())
        return 0;
    if (writable && outq_used(agent_outq()) > 0)
        return 0;
    return -1;
}

/* The host went away. The guest learns it through a control message that the kernel handles
 * apart from the data, so the new connection's first bytes may already have been read, or
 * may come before the port says it is connected again: nothing is dropped here. Only a frame
 * left half-decoded is looked at again: a host that died in the middle of a frame leaves one,
 * and the next connection's HELLO would be swallowed as its payload. So the bytes of that
 * partial frame are searched for a HELLO header; from there they are decoded again (before
 * the rest of `in`), and without one they are dropped and the stream resyncs. */
static void on_hangup(void) {
    if (!host_away)
        agent_log("host disconnected");
    host_away = 1;
    new_conn = 1;
    readable = writable = 0;
    if (dec.hdr_have == 0)
        return; /* at a frame boundary: nothing to look at again */
    size_t n = dec.hdr_have, k = 0;
    memcpy(replay, dec.hdr, dec.hdr_have);
    if (dec.hdr_have == AGENT_HDR_LEN) {
        memcpy(replay + n, dec.buf, dec.payload_have);
        n += dec.payload_have;
    }
    agent_dec_reset(&dec);
    /* A whole HELLO header, or at the very end the start of one. */
    while (k < n && memcmp(replay + k, hello_hdr, n - k < 5 ? n - k : 5) != 0)
        k++;
    replay_pos = k;
    replay_len = n;
    resync = k == n;
    if (k > 0)
        agent_log("stream: %zu bytes of a partial frame dropped", k);
}

void session_poll_done(const struct pollfd *pfd) {
    struct epoll_event ev;
    if (pfd->revents != 0 && epoll_wait(ep, &ev, 1, 0) == 1) {
        if (ev.events & (EPOLLHUP | EPOLLERR)) {
            on_hangup();
            return;
        }
        if (host_away) {
            host_away = 0;
            agent_log("host connected");
        }
        if (ev.events & EPOLLIN)
            readable = 1;
        if (ev.events & EPOLLOUT)
            writable = 1;
    }
    if (host_away)
        return;
    while (readable && in_len < sizeof in && can_take()) {
        ssize_t n = read(port, in + in_len, sizeof in - in_len);
        if (n > 0) {
            in_len += (size_t)n;
            session_pump();
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            if (n < 0 && errno != EAGAIN)
                agent_log("port read: %s", strerror(errno));
            readable = 0; /* EAGAIN, or 0: the host is going away (its HUP edge follows) */
        }
    }
    session_pump();
}

void session_drain(int ms) {
    int64_t deadline = agent_now_ms() + ms;
    while (outq_used(agent_outq()) > 0 && agent_now_ms() < deadline) {
        struct pollfd p = {port, POLLOUT, 0};
        if (poll(&p, 1, 50) > 0 && (p.revents & POLLHUP))
            break;
        outq_flush(agent_outq(), port);
    }
}
