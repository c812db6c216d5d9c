/* sbx-agent: the sandboxd guest agent. As pid 1 of the default image it brings the guest up
 * (boot.c, net.c), then serves the host over the virtio-serial port org.sandboxd.agent in one
 * poll loop: the port (session.c), the commands' pipes (cmd.c), SIGCHLD through a signalfd
 * (every child is reaped, orphans included), file reads (files.c). It can also be started by
 * another init (pid != 1): it then only mounts what is missing, becomes a child subreaper,
 * and leaves the network and hostname alone.
 *
 * Options: --debug (log every request; also sbx.debug=1 on the kernel command line).
 * Kernel command line: sbx.hostname=NAME (default "sandbox"). */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "agent.h"
#include "boot.h"
#include "cmd.h"
#include "files.h"
#include "log.h"
#include "net.h"
#include "session.h"

#define PORT_WAIT_MS 30000

int agent_debug;
static struct outq outq;

struct outq *agent_outq(void) {
    return &outq;
}

int agent_stream_room(void) {
    return outq_used(&outq) < STREAM_LIMIT && outq_free(&outq) >= AGENT_CHUNK + 64;
}

void agent_send(const uint8_t *f, size_t n) {
    uint8_t *at = n > 0 ? outq_reserve(&outq, n) : NULL;
    if (at == NULL) {
        agent_log(n > 0 ? "output queue full: frame dropped" : "frame too large: dropped");
        return;
    }
    memcpy(at, f, n);
    outq_commit(&outq, n);
}

void agent_send_err(uint32_t id, int err, const char *text) {
    uint8_t f[1200];
    if (agent_debug)
        agent_log("-> err id %u: %s", id, text);
    agent_send(f, agent_enc_err(f, sizeof f, id, (uint32_t)err, text));
}

/* Blocks the signals the loop takes through a signalfd; the fd, or -1. */
static int signals_setup(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

/* Empties the signalfd and reaps. */
static void on_signals(int sfd) {
    struct signalfd_siginfo si;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
    }
    cmds_reap();
}

/* The smaller of two poll timeouts (-1 = none). */
static int earlier(int a, int b) {
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

int main(int argc, char **argv) {
    static struct pollfd pfd[2 + CMD_POLLFDS];
    char host[65] = "sandbox", flag[16];
    int pid1 = getpid() == 1;
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--debug") == 0)
            agent_debug = 1;
    boot_mounts(pid1);
    setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
    agent_log("starting (version %s, protocol %u, pid %d)", AGENT_VERSION, AGENT_PROTO_VERSION,
              (int)getpid());
    if (boot_cmdline_get("sbx.debug", flag, sizeof flag) == 0 && strcmp(flag, "1") == 0)
        agent_debug = 1;
    if (!pid1)
        prctl(PR_SET_CHILD_SUBREAPER, 1);
    int sfd = signals_setup();
    if (sfd < 0 || outq_init(&outq, OUTQ_CAP) != 0)
        boot_poweroff("cannot set up signals or memory");
    boot_modules();
    if (pid1) {
        boot_cmdline_get("sbx.hostname", host, sizeof host);
        net_hostname(host);
        net_setup();
    }
    int port = boot_open_port(AGENT_PORT_NAME, PORT_WAIT_MS);
    if (port < 0)
        boot_poweroff("no agent port");
    session_init(port);
    agent_log("ready");
    for (;;) {
        if (session_shutdown_asked()) {
            session_drain(1000);
            boot_poweroff("shutdown asked by the host");
        }
        int timeout = cmds_tick();
        session_pump(); /* flush first: the room the streams see is what is left after it */
        if (files_pump())
            timeout = 0;
        pfd[0] = (struct pollfd){sfd, POLLIN, 0};
        timeout = earlier(timeout, session_poll_fill(&pfd[1]));
        int n = cmds_poll_fill(&pfd[2]);
        if (poll(pfd, (nfds_t)(2 + n), timeout) < 0) {
            if (errno == EINTR)
                continue;
            agent_log("poll: %s", strerror(errno));
            boot_poweroff("poll failed");
        }
        if (pfd[0].revents)
            on_signals(sfd);
        cmds_poll_done(&pfd[2], n);
        session_poll_done(&pfd[1]);
    }
}
