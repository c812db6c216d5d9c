/* epmd client. */
#define _GNU_SOURCE
#include "dist/epmd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <spawn.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util/clock.h"

extern char **environ;

#define EPMD_PORT 4369
#define ALIVE2_REQ 120
#define ALIVE2_X_RESP 118
#define ALIVE2_RESP 121
#define PORT_PLEASE2_REQ 122
#define PORT2_RESP 119

/* See epmd.h. Sends the part before '@' (the whole name if there is none); out untouched on -1. */
int sbx_epmd_encode_port_please(unsigned char *out, size_t cap, const char *node_name) {
    const char *at = strchr(node_name, '@');
    size_t alen = at != NULL ? (size_t)(at - node_name) : strlen(node_name);
    if (alen == 0 || alen + 3 > cap || alen + 1 > 0xffff)
        return -1;
    out[0] = (unsigned char)((alen + 1) >> 8);
    out[1] = (unsigned char)(alen + 1);
    out[2] = PORT_PLEASE2_REQ;
    memcpy(out + 3, node_name, alen);
    return (int)(alen + 3);
}

/* See epmd.h. Reads at most buf[0..10); *port is written only when 1 is returned. */
int sbx_epmd_parse_port_reply(const unsigned char *buf, size_t len, uint16_t *port,
                              const char **why) {
    if (len < 2)
        return 0;
    if (buf[0] != PORT2_RESP) {
        *why = "unexpected answer from epmd";
        return -1;
    }
    if (buf[1] != 0) {
        *why = "node not registered with epmd on its host";
        return -1;
    }
    if (len < 10)
        return 0;
    uint16_t high = (uint16_t)(buf[6] << 8 | buf[7]);
    uint16_t low = (uint16_t)(buf[8] << 8 | buf[9]);
    if (high < 6 || low > 6) {
        *why = "peer does not speak distribution version 6";
        return -1;
    }
    *port = (uint16_t)(buf[2] << 8 | buf[3]);
    return 1;
}

/* See epmd.h. *creation is written only when 1 is returned
 * (widened from 16 bits for an ALIVE2_RESP). */
int sbx_epmd_parse_alive_reply(const unsigned char *buf, size_t len, uint32_t *creation,
                               const char **why) {
    if (len < 2)
        return 0;
    if (buf[0] != ALIVE2_X_RESP && buf[0] != ALIVE2_RESP) {
        *why = "unexpected answer from epmd";
        return -1;
    }
    if (buf[1] != 0) {
        *why = "epmd refused the registration (is the node name already in use?)";
        return -1;
    }
    if (buf[0] == ALIVE2_X_RESP) {
        if (len < 6)
            return 0;
        *creation = (uint32_t)buf[2] << 24 | (uint32_t)buf[3] << 16 | (uint32_t)buf[4] << 8 | buf[5];
    } else {
        if (len < 4)
            return 0;
        *creation = (uint32_t)(buf[2] << 8 | buf[3]);
    }
    return 1;
}

/* Blocking connect to 127.0.0.1:4369. Returns a close-on-exec
 * fd the caller owns, or -1 with nothing open. */
static int connect_epmd(void) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(EPMD_PORT)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Starts `epmd -daemon` and waits for it to daemonise. */
static void start_epmd(void) {
    char *argv[] = {"epmd", "-daemon", NULL};
    pid_t pid;
    if (posix_spawnp(&pid, "epmd", NULL, NULL, argv, environ) == 0)
        waitpid(pid, NULL, 0);
}

/* See epmd.h. The 5 s bound is on the answer: reaching a freshly
 * started epmd may first take up to 50 retries of 100 ms. */
int sbx_epmd_register(const char *alive, uint16_t port, int *fd_out, uint32_t *creation,
                      const char **why) {
    unsigned char req[600];
    unsigned char resp[16];
    size_t alen = strlen(alive);
    size_t got = 0;
    int fd = -1;
    int rc = -1;

    *why = "node name too long";
    if (alen == 0 || alen > 255)
        goto done;
    fd = connect_epmd();
    for (int i = 0; fd < 0 && i < 50; i++) {
        if (i == 0)
            start_epmd();
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        fd = connect_epmd();
    }
    *why = "cannot reach or start epmd on 127.0.0.1:4369";
    if (fd < 0)
        goto done;
    size_t blen = 13 + alen;
    req[0] = (unsigned char)(blen >> 8);
    req[1] = (unsigned char)blen;
    req[2] = ALIVE2_REQ;
    req[3] = (unsigned char)(port >> 8);
    req[4] = (unsigned char)port;
    req[5] = 77; /* normal node; hiddenness is in the distribution flags */
    req[6] = 0;  /* tcp/ip v4 */
    req[7] = 0;
    req[8] = 6; /* highest version */
    req[9] = 0;
    req[10] = 6; /* lowest version */
    req[11] = (unsigned char)(alen >> 8);
    req[12] = (unsigned char)alen;
    memcpy(req + 13, alive, alen);
    req[13 + alen] = 0; /* no extra */
    req[14 + alen] = 0;
    *why = "cannot write to epmd";
    if (write(fd, req, blen + 2) != (ssize_t)(blen + 2))
        goto done;
    int64_t deadline = sbx_mono_ms() + 5000;
    for (;;) {
        int r = sbx_epmd_parse_alive_reply(resp, got, creation, why);
        if (r < 0)
            goto done;
        if (r > 0)
            break;
        int left = (int)(deadline - sbx_mono_ms());
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&pfd, 1, left) <= 0) {
            *why = "epmd did not answer";
            goto done;
        }
        ssize_t n = read(fd, resp + got, sizeof resp - got);
        if (n <= 0) {
            *why = "epmd closed the connection";
            goto done;
        }
        got += (size_t)n;
    }
    *fd_out = fd;
    fd = -1;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    return rc;
}
