/* The host connection (see session.h). Input is read in 64 KiB blocks into `in` and decoded
 * frame by frame; decoding pauses while the output queue could not take a largest answer or a
 * command's stdin is backed up (the port is not read then: virtio-serial holds the host back).
 * A bad frame length puts the stream in resync: bytes are skipped until a HELLO header
 * (len 13, type HELLO) shows up, which is how a new connection starts. */
#include "session.h"

#include <errno.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "cmd.h"
#include "files.h"
#include "log.h"
#include "procinfo.h"

#define HUP_RETRY_MS 20

static int port = -1;
static struct agent_dec dec;
static uint8_t dec_buf[AGENT_MAX_PAYLOAD];
static uint8_t in[64 * 1024];
static size_t in_pos, in_len;
static int resync;       /* skipping to the next HELLO header */
static int hello_done;   /* this connection said HELLO */
static int new_conn = 1; /* no HELLO since the host was last away */
static int host_away;    /* POLLHUP seen: the host is not connected */
static int64_t retry_at; /* when to look at the port again while the host is away */
static int shutdown_asked;
static struct agent_exec_req exec_req;
static uint8_t frame[512];

static const uint8_t hello_hdr[5] = {0, 0, 0, 13, AGENT_HELLO};

void session_init(int port_fd) {
    port = port_fd;
    agent_dec_init(&dec, dec_buf, sizeof dec_buf);
}

int session_shutdown_asked(void) {
    return shutdown_asked;
}

/* The stream restarts: no partial frame, no HELLO yet. */
static void stream_reset(void) {
    agent_dec_reset(&dec);
    in_pos = in_len = 0;
    hello_done = 0;
    resync = 0;
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
            agent_log("stream: resynchronised on a hello");
            return;
        }
        in_pos++;
    }
}

/* Whether a request may be handled now (its answer will fit). */
static int can_take(void) {
    return outq_free(agent_outq()) >= INPUT_ROOM && !cmds_stdin_full() && !shutdown_asked;
}

void session_pump(void) {
    while (in_pos < in_len && can_take()) {
        if (resync) {
            resync_scan();
            if (resync)
                break;
        }
        struct agent_frame f;
        size_t used = 0;
        enum agent_dec_status st = agent_dec_feed(&dec, in + in_pos, in_len - in_pos, &used, &f);
        in_pos += used;
        if (st == AGENT_DEC_FRAME) {
            dispatch(&f);
        } else if (st == AGENT_DEC_ERROR) {
            agent_log("stream: bad frame length; waiting for the next hello");
            resync = 1;
            hello_done = 0;
        }
    }
    if (in_pos == in_len)
        in_pos = in_len = 0;
    /* A partial HELLO header kept in resync: move it to the front so reading can go on. */
    if (in_pos > 0 && in_pos < in_len && in_len == sizeof in) {
        memmove(in, in + in_pos, in_len - in_pos);
        in_len -= in_pos;
        in_pos = 0;
    }
    if (port >= 0 && outq_flush(agent_outq(), port) != 0 && errno != EPIPE)
        agent_log("port write: %s", strerror(errno));
}

int session_poll_fill(struct pollfd *pfd) {
    int64_t now = agent_now_ms();
    pfd->fd = -1;
    pfd->events = 0;
    pfd->revents = 0;
    if (host_away && now < retry_at)
        return (int)(retry_at - now);
    pfd->fd = port;
    if (in_len < sizeof in && can_take())
        pfd->events |= POLLIN;
    if (outq_used(agent_outq()) > 0)
        pfd->events |= POLLOUT;
    return -1;
}

void session_poll_done(const struct pollfd *pfd) {
    if (pfd->fd < 0)
        return;
    if (pfd->revents & POLLHUP) {
        if (!host_away)
            agent_log("host disconnected");
        if (!host_away || in_len > 0 || hello_done)
            stream_reset();
        host_away = 1;
        new_conn = 1;
        retry_at = agent_now_ms() + HUP_RETRY_MS;
        return;
    }
    if (host_away) {
        host_away = 0;
        agent_log("host connected");
    }
    if ((pfd->revents & POLLIN) && in_len < sizeof in) {
        ssize_t n = read(port, in + in_len, sizeof in - in_len);
        if (n > 0)
            in_len += (size_t)n;
        else if (n < 0 && errno != EAGAIN && errno != EINTR)
            agent_log("port read: %s", strerror(errno));
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
