/* sbx-agentctl: talks to a guest agent through QEMU's chardev unix socket (the host side of
 * the virtio-serial port org.sandboxd.agent), one request per run. For tests, benchmarks and
 * people debugging an image; sandboxd itself has its own client in the vm backend.
 *
 *   sbx-agentctl [--wait-ms N] SOCKET hello
 *   sbx-agentctl SOCKET exec [--main] [--timeout MS] [--stdin FILE] [--env K=V]... [--cwd DIR]
 *                            -- ARGV...         (--main: the main workload, request id 0)
 *   sbx-agentctl SOCKET read PATH            (the file to stdout)
 *   sbx-agentctl SOCKET write PATH [MODE]    (stdin to the file; MODE octal, default 0644)
 *   sbx-agentctl SOCKET ps | metrics | shutdown
 *   sbx-agentctl SOCKET kill ID              (KILL; prints the EXIT of that id: 0 = main)
 *   sbx-agentctl SOCKET garbage | huge       (protocol abuse, for tests: see below)
 *
 * Every run connects, says HELLO and prints nothing of it except for `hello`, which prints
 * the answer and, with --wait-ms N (retry connecting for up to N ms until the socket exists
 * and the agent answers), `hello_ms` = the time from the start of this program to the answer.
 * exec copies the command's stdout and stderr to ours as they come and exits with its exit
 * code (128 + the signal when killed; "timed out" is said on stderr). Errors from the agent
 * are printed as "sbx-agentctl: error ERRNO: TEXT" and exit 125 (exec) or 1.
 * `garbage` sends an unknown type, a malformed EXEC (each must be answered ERR), then a length
 * that is too small followed by junk, then a HELLO that must be answered on the same
 * connection. `huge` sends a header announcing 4 GiB, then a HELLO that must be answered. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmproto/agent_proto.h"

#define REQ_ID req_id

static uint32_t req_id = 1;     /* 0 for exec --main */
static int sock = -1;
static struct agent_dec dec;
static uint8_t dec_buf[AGENT_MAX_PAYLOAD];
static uint8_t inbuf[64 * 1024];
static size_t in_pos, in_len;
static uint8_t *out;            /* frames waiting to be written */
static size_t out_len, out_cap;
static int feed_fd = -1;        /* stdin source for exec --stdin or write */
static uint8_t feed_type;       /* AGENT_STDIN or AGENT_DATA */
static uint8_t frame[AGENT_CHUNK + 64];

static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void die(const char *what) {
    fprintf(stderr, "sbx-agentctl: %s\n", what);
    exit(1);
}

/* Queues a frame (n == 0: the encoder failed). */
static void queue(const uint8_t *f, size_t n) {
    if (n == 0)
        die("request too large");
    if (out_len + n > out_cap) {
        out_cap = (out_len + n) * 2;
        out = realloc(out, out_cap);
        if (out == NULL)
            die("out of memory");
    }
    memcpy(out + out_len, f, n);
    out_len += n;
}

/* Writes what the socket takes now of the queued bytes; dies if the connection broke. */
static void write_some(void) {
    ssize_t n = write(sock, out, out_len);
    if (n < 0 && errno != EAGAIN && errno != EINTR)
        die("the connection broke while writing");
    if (n > 0) {
        memmove(out, out + n, out_len - (size_t)n);
        out_len -= (size_t)n;
    }
}

/* One chunk of the feed file as STDIN/DATA; at EOF the empty STDIN or END, and no more. */
static void feed_more(void) {
    static uint8_t chunk[AGENT_CHUNK];
    ssize_t n = read(feed_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR)
        return;
    if (n < 0)
        die("reading the input failed");
    if (n == 0) {
        queue(frame, feed_type == AGENT_STDIN
                         ? agent_enc_bytes(frame, sizeof frame, AGENT_STDIN, REQ_ID, "", 0)
                         : agent_enc_empty(frame, sizeof frame, AGENT_END, REQ_ID));
        if (feed_fd > 0)
            close(feed_fd);
        feed_fd = -1;
        return;
    }
    queue(frame, agent_enc_bytes(frame, sizeof frame, feed_type, REQ_ID, chunk, (size_t)n));
}

/* The next frame from the agent, writing queued frames and feeding input meanwhile. Exits
 * when the agent closes the connection or breaks the protocol. */
static struct agent_frame next_frame(void) {
    struct agent_frame f;
    for (;;) {
        while (in_pos < in_len) {
            size_t used = 0;
            enum agent_dec_status st = agent_dec_feed(&dec, inbuf + in_pos, in_len - in_pos,
                                                      &used, &f);
            in_pos += used;
            if (st == AGENT_DEC_FRAME)
                return f;
            if (st == AGENT_DEC_ERROR)
                die("the agent sent a bad frame length");
        }
        in_pos = in_len = 0;
        if (feed_fd >= 0 && out_len < 4 * AGENT_CHUNK)
            feed_more();
        struct pollfd p = {sock, POLLIN | (out_len > 0 ? POLLOUT : 0), 0};
        if (poll(&p, 1, feed_fd >= 0 && out_len < 4 * AGENT_CHUNK ? 0 : -1) < 0) {
            if (errno == EINTR)
                continue;
            die("poll failed");
        }
        if ((p.revents & POLLOUT) && out_len > 0)
            write_some();
        if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = read(sock, inbuf, sizeof inbuf);
            if (n == 0)
                die("the agent closed the connection");
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                die("the connection broke while reading");
            if (n > 0)
                in_len = (size_t)n;
        }
    }
}

/* Writes everything queued (used before closing on purpose). */
static void flush_all(void) {
    while (out_len > 0) {
        struct pollfd p = {sock, POLLOUT, 0};
        poll(&p, 1, 1000);
        write_some();
    }
}

/* Prints an ERR frame and exits with code. */
static void print_err_exit(const struct agent_frame *f, int code) {
    struct agent_err_msg e;
    if (agent_parse_err(f, &e) != 0)
        die("malformed error from the agent");
    fprintf(stderr, "sbx-agentctl: error %u: %.*s\n", e.err, (int)e.text.len, e.text.ptr);
    exit(code);
}

/* Connects once; the fd or -1. */
static int try_connect(const char *path) {
    struct sockaddr_un a;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    if (fd < 0 || strlen(path) >= sizeof a.sun_path)
        die("bad socket path");
    memcpy(a.sun_path, path, strlen(path));
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    return fd;
}

/* Waits up to ms for a readable socket; 1 if readable. */
static int wait_readable(int ms) {
    struct pollfd p = {sock, POLLIN, 0};
    return poll(&p, 1, ms) > 0;
}

/* Connects and says HELLO; with wait_ms > 0 retries (connection refused, or no answer within
 * 200 ms: the guest is still booting) until wait_ms is over. Fills *h. */
static void connect_hello(const char *path, int wait_ms, struct agent_hello_resp *h) {
    int64_t deadline = now_ms() + wait_ms;
    agent_dec_init(&dec, dec_buf, sizeof dec_buf);
    for (;;) {
        sock = try_connect(path);
        if (sock >= 0) {
            out_len = 0;
            queue(frame, agent_enc_hello_req(frame, sizeof frame, REQ_ID, AGENT_PROTO_VERSION,
                                             AGENT_PROTO_VERSION));
            flush_all();
            /* The agent ignores a connection it has not seen yet: say HELLO again every
             * 200 ms until it answers (each HELLO restarts its stream). */
            while (!wait_readable(200) && now_ms() < deadline) {
                queue(frame, agent_enc_hello_req(frame, sizeof frame, REQ_ID, AGENT_PROTO_VERSION,
                                                 AGENT_PROTO_VERSION));
                flush_all();
            }
            if (wait_readable(wait_ms > 0 ? 0 : 60000))
                break;
            close(sock);
            sock = -1;
        }
        if (now_ms() >= deadline)
            die("no answer from the agent");
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    struct agent_frame f = next_frame();
    if (f.type == AGENT_ERR)
        print_err_exit(&f, 1);
    if (f.type != AGENT_HELLO || agent_parse_hello_resp(&f, h) != 0)
        die("the agent did not answer HELLO");
    /* Further HELLOs sent while waiting are answered too: they are skipped by id order. */
}

/* Frames of other requests (the main workload's, when this is not it) and repeated HELLO
 * answers are skipped. */
static struct agent_frame next_for_request(void) {
    struct agent_frame f;
    do {
        f = next_frame();
    } while (f.type == AGENT_HELLO || f.id != req_id);
    return f;
}

static int cmd_exec(int argc, char **argv) {
    uint32_t timeout = 0, flags = 0;
    const char *env[AGENT_MAX_ARGS], *cwd = NULL;
    uint32_t envc = 0;
    int i = 0;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout = (uint32_t)strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--stdin") == 0 && i + 1 < argc) {
            feed_fd = strcmp(argv[i + 1], "-") == 0 ? 0 : open(argv[i + 1], O_RDONLY | O_CLOEXEC);
            i++;
            if (feed_fd < 0)
                die("cannot open the --stdin file");
            feed_type = AGENT_STDIN;
            flags |= AGENT_EXEC_STDIN;
        } else if (strcmp(argv[i], "--env") == 0 && i + 1 < argc && envc < AGENT_MAX_ARGS) {
            env[envc++] = argv[++i];
        } else if (strcmp(argv[i], "--cwd") == 0 && i + 1 < argc) {
            cwd = argv[++i];
        } else if (strcmp(argv[i], "--main") == 0) {
            flags |= AGENT_EXEC_MAIN;
            req_id = AGENT_MAIN_ID;
        } else {
            die("usage: exec [--main] [--timeout MS] [--stdin FILE] [--env K=V]... [--cwd DIR] -- "
                "ARGV...");
        }
    }
    if (i >= argc - 1)
        die("exec: no command after --");
    i++;
    queue(frame, agent_enc_exec(frame, sizeof frame, REQ_ID, flags, timeout,
                                (const char *const *)argv + i, (uint32_t)(argc - i), env, envc,
                                cwd));
    int started = 0;
    for (;;) {
        struct agent_frame f = next_for_request();
        uint8_t stream;
        struct agent_str data;
        struct agent_exit_msg x;
        if (f.type == AGENT_STARTED) {
            started = 1;
        } else if (f.type == AGENT_OUT && agent_parse_out(&f, &stream, &data) == 0) {
            size_t off = 0;
            while (off < data.len) {
                ssize_t n = write(stream, data.ptr + off, data.len - off);
                if (n <= 0)
                    die("cannot write the output");
                off += (size_t)n;
            }
        } else if (f.type == AGENT_EXIT && agent_parse_exit(&f, &x) == 0) {
            if (x.timed_out)
                fprintf(stderr, "sbx-agentctl: timed out\n");
            if (x.signal != 0) {
                fprintf(stderr, "sbx-agentctl: killed by signal %u\n", x.signal);
                return 128 + (int)x.signal;
            }
            return x.exit_code;
        } else if (f.type == AGENT_ERR) {
            print_err_exit(&f, 125);
        } else {
            fprintf(stderr, "sbx-agentctl: unexpected %s (started %d)\n",
                    agent_type_name(f.type), started);
            return 125;
        }
    }
}

static int cmd_read(const char *path) {
    queue(frame, agent_enc_read(frame, sizeof frame, REQ_ID, path));
    for (;;) {
        struct agent_frame f = next_for_request();
        struct agent_str data;
        if (f.type == AGENT_DATA && agent_parse_bytes(&f, &data) == 0) {
            if (fwrite(data.ptr, 1, data.len, stdout) != data.len)
                die("cannot write the output");
        } else if (f.type == AGENT_END) {
            return fflush(stdout) == 0 ? 0 : 1;
        } else if (f.type == AGENT_ERR) {
            print_err_exit(&f, 1);
        } else {
            die("unexpected answer to READ");
        }
    }
}

static int cmd_write(const char *path, const char *mode) {
    queue(frame, agent_enc_write(frame, sizeof frame, REQ_ID, path,
                                 (uint32_t)strtoul(mode, NULL, 8)));
    feed_fd = 0;
    feed_type = AGENT_DATA;
    struct agent_frame f = next_for_request();
    if (f.type == AGENT_ERR)
        print_err_exit(&f, 1);
    if (f.type != AGENT_OK)
        die("unexpected answer to WRITE");
    puts("ok");
    return 0;
}

static int cmd_ps(void) {
    queue(frame, agent_enc_empty(frame, sizeof frame, AGENT_PS, REQ_ID));
    struct agent_frame f = next_for_request();
    struct agent_rd r;
    uint32_t count;
    if (f.type == AGENT_ERR)
        print_err_exit(&f, 1);
    if (f.type != AGENT_PS_LIST || agent_ps_begin(&f, &r, &count) != 0)
        die("unexpected answer to PS");
    printf("PID PPID S RSS NAME CMDLINE\n");
    for (uint32_t i = 0; i < count; i++) {
        struct agent_ps_entry e;
        if (agent_ps_next(&r, &e) != 0)
            die("malformed PS_LIST");
        printf("%u %u %c %llu %.*s %.*s\n", e.pid, e.ppid, e.state,
               (unsigned long long)e.rss_bytes, (int)e.name.len, e.name.ptr, (int)e.cmdline.len,
               e.cmdline.ptr);
    }
    return agent_rd_done(&r) == 0 ? 0 : 1;
}

static int cmd_metrics(void) {
    queue(frame, agent_enc_empty(frame, sizeof frame, AGENT_METRICS, REQ_ID));
    struct agent_frame f = next_for_request();
    struct agent_metrics m;
    if (f.type == AGENT_ERR)
        print_err_exit(&f, 1);
    if (f.type != AGENT_METRICS_R || agent_parse_metrics(&f, &m) != 0)
        die("unexpected answer to METRICS");
    printf("mem_total %llu\nmem_available %llu\ncpu_user %llu\ncpu_system %llu\n"
           "cpu_idle %llu\nuptime_ms %llu\nload1 %u\nload5 %u\nload15 %u\nnprocs %u\n",
           (unsigned long long)m.mem_total, (unsigned long long)m.mem_available,
           (unsigned long long)m.cpu_user, (unsigned long long)m.cpu_system,
           (unsigned long long)m.cpu_idle, (unsigned long long)m.uptime_ms, m.load1, m.load5,
           m.load15, m.nprocs);
    return 0;
}

/* KILL id (0: the main workload, whoever started it); waits for its EXIT. */
static int cmd_kill(uint32_t id) {
    struct agent_exit_msg x;
    req_id = id;
    queue(frame, agent_enc_empty(frame, sizeof frame, AGENT_KILL, id));
    for (;;) {
        struct agent_frame f = next_for_request();
        if (f.type == AGENT_ERR)
            print_err_exit(&f, 1);
        if (f.type == AGENT_EXIT && agent_parse_exit(&f, &x) == 0) {
            printf("exit %d signal %u\n", x.exit_code, x.signal);
            return 0;
        }
    }
}

/* Expects an ERR answer to what was just queued. */
static void expect_err(const char *what) {
    struct agent_frame f;
    do {
        f = next_frame();
    } while (f.type == AGENT_HELLO);
    struct agent_err_msg e;
    if (f.type != AGENT_ERR || agent_parse_err(&f, &e) != 0) {
        fprintf(stderr, "sbx-agentctl: %s: expected ERR, got %s\n", what,
                agent_type_name(f.type));
        exit(1);
    }
    printf("%s: error %u: %.*s\n", what, e.err, (int)e.text.len, e.text.ptr);
}

/* Sends HELLO (id 9) after some abuse; exits unless the agent answers it. */
static void hello_after(const char *what) {
    struct agent_hello_resp h;
    queue(frame, agent_enc_hello_req(frame, sizeof frame, 9, AGENT_PROTO_VERSION,
                                     AGENT_PROTO_VERSION));
    struct agent_frame f = next_frame();
    if (f.type != AGENT_HELLO || f.id != 9 || agent_parse_hello_resp(&f, &h) != 0) {
        fprintf(stderr, "sbx-agentctl: no HELLO answer after %s\n", what);
        exit(1);
    }
}

static int cmd_garbage(void) {
    queue(frame, agent_enc_empty(frame, sizeof frame, 200, 7));
    expect_err("unknown type");
    struct agent_wr w;
    agent_wr_begin(&w, frame, sizeof frame, AGENT_EXEC, 8);
    agent_wr_u32(&w, 0);
    agent_wr_u32(&w, 0);
    agent_wr_u32(&w, 1000000); /* argc far over the bound, no strings */
    queue(frame, agent_wr_end(&w));
    expect_err("malformed exec");
    /* A length shorter than type + id, then junk without a HELLO header, then a HELLO. */
    static const uint8_t bad[] = {0, 0, 0, 3, 0xab, 0xab, 0xab};
    queue(bad, sizeof bad);
    memset(frame, 0xab, 1000);
    queue(frame, 1000);
    hello_after("the junk");
    printf("resynchronised: hello answered\n");
    return 0;
}

static int cmd_huge(void) {
    static const uint8_t huge[] = {0xff, 0xff, 0xff, 0xff, AGENT_DATA, 0, 0, 0, 1, 1, 2, 3};
    queue(huge, sizeof huge);
    hello_after("the 4 GiB length");
    printf("sent a 4 GiB length: hello answered after it\n");
    return 0;
}

int main(int argc, char **argv) {
    int wait_ms = 0, i = 1, rc = 1;
    int64_t t0 = now_ms();
    signal(SIGPIPE, SIG_IGN);
    if (i + 1 < argc && strcmp(argv[i], "--wait-ms") == 0) {
        wait_ms = atoi(argv[i + 1]);
        i += 2;
    }
    if (argc - i < 2)
        die("usage: sbx-agentctl [--wait-ms N] SOCKET hello|exec|read|write|ps|metrics|shutdown");
    const char *path = argv[i], *cmd = argv[i + 1];
    struct agent_hello_resp h;
    connect_hello(path, wait_ms, &h);
    int64_t t1 = now_ms();
    if (strcmp(cmd, "hello") == 0) {
        printf("version %u\nkernel %.*s\nagent %.*s\nboot_ms %llu\n", h.version,
               (int)h.kernel_release.len, h.kernel_release.ptr, (int)h.agent_version.len,
               h.agent_version.ptr, (unsigned long long)h.boot_ms);
        if (wait_ms > 0)
            printf("hello_ms %lld\n", (long long)(t1 - t0));
        rc = 0;
    } else if (strcmp(cmd, "exec") == 0) {
        rc = cmd_exec(argc - i - 2, argv + i + 2);
    } else if (strcmp(cmd, "read") == 0 && argc - i == 3) {
        rc = cmd_read(argv[i + 2]);
    } else if (strcmp(cmd, "write") == 0 && (argc - i == 3 || argc - i == 4)) {
        rc = cmd_write(argv[i + 2], argc - i == 4 ? argv[i + 3] : "644");
    } else if (strcmp(cmd, "ps") == 0) {
        rc = cmd_ps();
    } else if (strcmp(cmd, "metrics") == 0) {
        rc = cmd_metrics();
    } else if (strcmp(cmd, "shutdown") == 0) {
        queue(frame, agent_enc_empty(frame, sizeof frame, AGENT_SHUTDOWN, REQ_ID));
        struct agent_frame f = next_for_request();
        if (f.type != AGENT_OK)
            die("unexpected answer to SHUTDOWN");
        puts("ok");
        rc = 0;
    } else if (strcmp(cmd, "kill") == 0 && argc - i == 3) {
        rc = cmd_kill((uint32_t)strtoul(argv[i + 2], NULL, 10));
    } else if (strcmp(cmd, "garbage") == 0) {
        rc = cmd_garbage();
    } else if (strcmp(cmd, "huge") == 0) {
        rc = cmd_huge();
    } else {
        die("unknown command");
    }
    return rc;
}
