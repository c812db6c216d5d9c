/* File transfers (see files.h). The files are regular files on the guest's own file systems,
 * so reads and writes complete at once: they are done on the loop. */
#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

struct xfer {
    int used;
    uint32_t id;
    int fd;
    int reading;
};

static struct xfer xfers[XFER_MAX];
static uint8_t frame[AGENT_CHUNK + 64];
static uint8_t chunk[AGENT_CHUNK];

static struct xfer *find(uint32_t id) {
    for (int i = 0; i < XFER_MAX; i++)
        if (xfers[i].used && xfers[i].id == id)
            return &xfers[i];
    return NULL;
}

static void xfer_close(struct xfer *x) {
    if (x->used && x->fd >= 0)
        close(x->fd);
    memset(x, 0, sizeof *x);
    x->fd = -1;
}

/* Sends ERR {e, "what path: strerror"} for id. */
static void send_errno(uint32_t id, int e, const char *what, const char *path) {
    char text[PATH_MAX + 128];
    snprintf(text, sizeof text, "%s %s: %s", what, path, strerror(e));
    agent_send_err(id, e, text);
}

/* Opens path (checked: absolute, no NUL, shorter than PATH_MAX) for a transfer in a free slot.
 * Answers ERR itself and returns NULL on failure. */
static struct xfer *open_xfer(uint32_t id, struct agent_str p, int flags, mode_t mode,
                              const char *what) {
    char path[PATH_MAX];
    struct xfer *x = NULL;
    struct stat st;
    int fd = -1;
    memset(&st, 0, sizeof st);
    if (p.len == 0 || p.len >= sizeof path || p.ptr[0] != '/' || memchr(p.ptr, 0, p.len)) {
        agent_send_err(id, EINVAL, "the path must be absolute, without NUL bytes");
        goto out;
    }
    memcpy(path, p.ptr, p.len);
    path[p.len] = '\0';
    if (find(id) != NULL) {
        agent_send_err(id, EBUSY, "id in use");
        goto out;
    }
    for (int i = 0; i < XFER_MAX && x == NULL; i++)
        if (!xfers[i].used)
            x = &xfers[i];
    if (x == NULL) {
        agent_send_err(id, EAGAIN, "too many file transfers");
        goto out;
    }
    /* O_NONBLOCK so that a FIFO cannot block the open; only regular files are kept. */
    fd = open(path, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, mode);
    if (fd < 0) {
        send_errno(id, errno, what, path);
        x = NULL;
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int e = S_ISDIR(st.st_mode) ? EISDIR : EINVAL;
        send_errno(id, e, what, path);
        x = NULL;
        goto out;
    }
    if ((flags & O_CREAT) && fchmod(fd, mode) != 0) {
        send_errno(id, errno, "chmod", path);
        x = NULL;
        goto out;
    }
    fcntl(fd, F_SETFL, 0);
    x->used = 1;
    x->id = id;
    x->fd = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    return x;
}

void files_write(uint32_t id, const struct agent_write_req *req) {
    open_xfer(id, req->path, O_WRONLY | O_CREAT | O_TRUNC, (mode_t)(req->mode & 07777), "write");
}

void files_data(uint32_t id, struct agent_str data) {
    struct xfer *x = find(id);
    size_t off = 0;
    if (x == NULL || x->reading)
        return; /* after an ERR, the rest of the transfer is ignored */
    while (off < data.len) {
        ssize_t n = write(x->fd, data.ptr + off, data.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            agent_send_err(id, e, strerror(e));
            xfer_close(x);
            break;
        }
        off += (size_t)n;
    }
}

void files_end(uint32_t id) {
    struct xfer *x = find(id);
    if (x == NULL || x->reading)
        return;
    int rc = close(x->fd);
    int e = errno;
    x->fd = -1;
    xfer_close(x);
    if (rc != 0)
        agent_send_err(id, e, strerror(e));
    else
        agent_send(frame, agent_enc_empty(frame, sizeof frame, AGENT_OK, id));
}

void files_read(uint32_t id, struct agent_str path) {
    struct xfer *x = open_xfer(id, path, O_RDONLY, 0, "read");
    if (x != NULL)
        x->reading = 1;
}

int files_pump(void) {
    int pending = 0;
    for (int i = 0; i < XFER_MAX; i++) {
        struct xfer *x = &xfers[i];
        while (x->used && x->reading && agent_stream_room()) {
            ssize_t n = read(x->fd, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                agent_send_err(x->id, errno, strerror(errno));
                xfer_close(x);
            } else if (n == 0) {
                agent_send(frame, agent_enc_empty(frame, sizeof frame, AGENT_END, x->id));
                xfer_close(x);
            } else {
                agent_send(frame, agent_enc_bytes(frame, sizeof frame, AGENT_DATA, x->id, chunk,
                                                  (size_t)n));
            }
        }
        if (x->used && x->reading)
            pending = 1;
    }
    return pending && agent_stream_room();
}

void files_reset(void) {
    for (int i = 0; i < XFER_MAX; i++)
        xfer_close(&xfers[i]);
}
