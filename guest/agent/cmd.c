/* Commands (see cmd.h). A command's life: spawned (the exec error pipe still open) ->
 * STARTED sent (the pipe closed at exec) or ERR (the child wrote its errno) -> running ->
 * reaped (status kept) -> EXIT sent once stdout and stderr are at EOF (or EXIT_GRACE_MS after
 * the reap, for background children that keep the pipes open) -> slot freed. */
#include "cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent.h"
#include "log.h"

#define STDIN_CAP      (320u * 1024u) /* bytes of STDIN held per command */
#define STDIN_HIGH     (256u * 1024u) /* past this the port is not read */
#define EXIT_GRACE_MS  2000
#define DEFAULT_PATH   "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

extern char **environ;

struct cmd {
    int used;
    uint32_t id;
    int main;         /* the main workload (id 0) */
    int detached;     /* its connection is gone: nothing more is sent for it */
    pid_t pid;
    int err_fd;       /* exec error pipe, -1 once STARTED or ERR was sent */
    int out_fd[3];    /* [1] stdout, [2] stderr; -1 at EOF */
    int has_stdin;    /* EXEC asked for stdin */
    int in_fd;        /* -1 without stdin or once closed */
    uint8_t *in_buf;  /* pending STDIN bytes */
    size_t in_len;
    int in_eof;       /* EOF asked: close in_fd once in_buf is written */
    int failed;       /* exec failed: ERR was sent, no EXIT */
    int exited;
    int status;
    int timed_out;
    int64_t deadline; /* 0 = no timeout */
    int64_t grace_from;
};

static struct cmd cmds[CMD_MAX];
static uint8_t chunk[AGENT_CHUNK];
static uint8_t frame[AGENT_CHUNK + 64];

/* The live (not detached) command with this id, or NULL. */
static struct cmd *find(uint32_t id) {
    for (int i = 0; i < CMD_MAX; i++)
        if (cmds[i].used && !cmds[i].detached && cmds[i].id == id)
            return &cmds[i];
    return NULL;
}

static void close_fd(int *fd) {
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* An empty slot holding nothing. */
static void slot_clear(struct cmd *c) {
    memset(c, 0, sizeof *c);
    c->err_fd = c->out_fd[0] = c->out_fd[1] = c->out_fd[2] = c->in_fd = -1;
}

/* Releases everything the slot holds. */
static void slot_free(struct cmd *c) {
    close_fd(&c->err_fd);
    close_fd(&c->out_fd[1]);
    close_fd(&c->out_fd[2]);
    close_fd(&c->in_fd);
    free(c->in_buf);
    slot_clear(c);
}

/* NUL-terminated copy of s into the arena at *at (advanced); NULL if s holds a NUL. */
static char *arena_str(char **at, struct agent_str s) {
    char *p = *at;
    if (memchr(s.ptr, '\0', s.len) != NULL)
        return NULL;
    memcpy(p, s.ptr, s.len);
    p[s.len] = '\0';
    *at = p + s.len + 1;
    return p;
}

/* Index of an entry of env[0..n) with the same KEY= as kv, or -1. */
static int env_find(char **env, int n, const char *kv) {
    size_t klen = strcspn(kv, "=");
    for (int i = 0; i < n; i++)
        if (strncmp(env[i], kv, klen) == 0 && env[i][klen] == '=')
            return i;
    return -1;
}

/* The child side of fork: never returns. Writes errno to ep on failure. */
static void child(int in, int out, int err, int ep, char **argv, char **envp, const char *cwd) {
    sigset_t none;
    sigemptyset(&none);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        goto fail;
    if (chdir(cwd) != 0)
        goto fail;
    environ = envp;
    execvp(argv[0], argv);
fail:;
    int e = errno;
    ssize_t w = write(ep, &e, sizeof e);
    (void)w;
    _exit(127);
}

/* Spawns req into slot c. 0, or an errno (nothing left behind). */
static int spawn(struct cmd *c, const struct agent_exec_req *req) {
    int rc = 0;
    int outp[2] = {-1, -1}, errp[2] = {-1, -1}, inp[2] = {-1, -1}, ep[2] = {-1, -1};
    size_t size = req->cwd.len + 2;
    for (uint32_t i = 0; i < req->argc; i++)
        size += req->argv[i].len + 1;
    for (uint32_t i = 0; i < req->envc; i++)
        size += req->env[i].len + 1;
    char *arena = malloc(size);
    char **argv = calloc(req->argc + 1, sizeof *argv);
    char **envp = calloc(req->envc + 3, sizeof *envp);
    char *at = arena;
    int envn = 0;
    if (arena == NULL || argv == NULL || envp == NULL) {
        rc = ENOMEM;
        goto out;
    }
    envp[envn++] = DEFAULT_PATH;
    envp[envn++] = "HOME=/root";
    for (uint32_t i = 0; i < req->argc; i++)
        if ((argv[i] = arena_str(&at, req->argv[i])) == NULL || (i == 0 && argv[0][0] == '\0'))
            rc = EINVAL;
    for (uint32_t i = 0; i < req->envc && rc == 0; i++) {
        char *kv = arena_str(&at, req->env[i]);
        if (kv == NULL || strchr(kv, '=') == NULL || kv[0] == '=') {
            rc = EINVAL;
            break;
        }
        int j = env_find(envp, envn, kv);
        envp[j >= 0 ? j : envn++] = kv;
    }
    char *cwd = arena_str(&at, req->cwd);
    if (rc != 0 || req->argc == 0 || cwd == NULL) {
        rc = EINVAL;
        goto out;
    }
    if (cwd[0] == '\0')
        cwd = "/";
    if (pipe2(outp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 || pipe2(ep, O_CLOEXEC) != 0 ||
        ((req->flags & AGENT_EXEC_STDIN) ? pipe2(inp, O_CLOEXEC)
                                         : (inp[0] = open("/dev/null", O_RDONLY | O_CLOEXEC))) < 0) {
        rc = errno;
        goto out;
    }
    pid_t pid = fork();
    if (pid < 0) {
        rc = errno;
        goto out;
    }
    if (pid == 0)
        child(inp[0], outp[1], errp[1], ep[1], argv, envp, cwd);
    c->pid = pid;
    c->err_fd = ep[0];
    c->out_fd[1] = outp[0];
    c->out_fd[2] = errp[0];
    c->in_fd = inp[1];
    ep[0] = outp[0] = errp[0] = inp[1] = -1;
    fcntl(c->out_fd[1], F_SETFL, O_NONBLOCK);
    fcntl(c->out_fd[2], F_SETFL, O_NONBLOCK);
    fcntl(c->err_fd, F_SETFL, O_NONBLOCK);
    if (c->in_fd >= 0)
        fcntl(c->in_fd, F_SETFL, O_NONBLOCK);
out:
    close_fd(&outp[0]);
    close_fd(&outp[1]);
    close_fd(&errp[0]);
    close_fd(&errp[1]);
    close_fd(&inp[0]);
    close_fd(&inp[1]);
    close_fd(&ep[0]);
    close_fd(&ep[1]);
    free(arena);
    free(argv);
    free(envp);
    return rc;
}

void cmd_exec(uint32_t id, const struct agent_exec_req *req) {
    struct cmd *c = NULL;
    int is_main = (req->flags & AGENT_EXEC_MAIN) != 0;
    if (id == AGENT_MAIN_ID && !is_main) {
        agent_send_err(id, EINVAL, "id 0 is the main workload's");
        return;
    }
    if (find(id) != NULL) {
        agent_send_err(id, EBUSY, is_main ? "the main workload is running" : "id in use");
        return;
    }
    for (int i = 0; i < CMD_MAX && c == NULL; i++)
        if (!cmds[i].used)
            c = &cmds[i];
    if (c == NULL) {
        agent_send_err(id, EAGAIN, "too many commands");
        return;
    }
    slot_clear(c);
    int rc = spawn(c, req);
    if (rc != 0) {
        slot_free(c);
        agent_send_err(id, rc, rc == EINVAL ? "bad argv, env or cwd" : strerror(rc));
        return;
    }
    c->used = 1;
    c->id = id;
    c->main = is_main;
    c->has_stdin = (req->flags & AGENT_EXEC_STDIN) != 0;
    c->deadline = req->timeout_ms > 0 ? agent_now_ms() + req->timeout_ms : 0;
    if (is_main || agent_debug)
        agent_log("exec %u%s: pid %d, %.*s", id, is_main ? " (main workload)" : "", (int)c->pid,
                  (int)(req->argv[0].len > 200 ? 200 : req->argv[0].len), req->argv[0].ptr);
}

/* Writes what it can of the pending stdin; closes stdin at EOF or when the reader is gone. */
static void stdin_flush(struct cmd *c) {
    while (c->in_fd >= 0 && c->in_len > 0) {
        ssize_t n = write(c->in_fd, c->in_buf, c->in_len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                c->in_len = 0; /* EPIPE: the command stopped reading */
                close_fd(&c->in_fd);
            }
            break;
        }
        memmove(c->in_buf, c->in_buf + n, c->in_len - (size_t)n);
        c->in_len -= (size_t)n;
    }
    if (c->in_eof && c->in_len == 0)
        close_fd(&c->in_fd);
}

void cmd_stdin(uint32_t id, struct agent_str data) {
    struct cmd *c = find(id);
    if (c == NULL) {
        agent_send_err(id, ESRCH, "no such command");
    } else if (!c->has_stdin) {
        agent_send_err(id, EINVAL, "the command was started without stdin");
    } else if (c->failed) {
        /* ERR already answered its EXEC; the host may have sent stdin before it knew. */
    } else if (c->in_eof || (c->in_fd < 0 && c->in_buf == NULL && c->exited)) {
        /* after EOF, or the command is gone: nothing reads it any more */
    } else if (data.len == 0) {
        c->in_eof = 1;
        stdin_flush(c);
    } else if (c->in_fd >= 0) {
        if (c->in_buf == NULL && (c->in_buf = malloc(STDIN_CAP)) == NULL) {
            agent_send_err(id, ENOMEM, "no memory for stdin");
            return;
        }
        if (c->in_len + data.len > STDIN_CAP) {
            agent_send_err(id, ENOBUFS, "stdin sent faster than the command reads it");
            return;
        }
        memcpy(c->in_buf + c->in_len, data.ptr, data.len);
        c->in_len += data.len;
        stdin_flush(c);
    }
}

void cmd_kill(uint32_t id) {
    struct cmd *c = find(id);
    if (c == NULL || c->failed)
        agent_send_err(id, ESRCH, "no such command");
    else if (kill(-c->pid, SIGKILL) != 0 && !c->exited)
        kill(c->pid, SIGKILL);
}

void cmds_detach(void) {
    int n = 0;
    for (int i = 0; i < CMD_MAX; i++) {
        struct cmd *c = &cmds[i];
        if (!c->used || c->main || c->detached)
            continue;
        kill(-c->pid, SIGKILL);
        c->detached = 1;
        n++;
    }
    if (n > 0)
        agent_log("new connection: killed %d commands of the previous one", n);
}

int cmds_stdin_full(void) {
    for (int i = 0; i < CMD_MAX; i++)
        if (cmds[i].used && cmds[i].in_len > STDIN_HIGH)
            return 1;
    return 0;
}

int cmds_poll_fill(struct pollfd *pfd) {
    int n = 0;
    int room = agent_stream_room();
    for (int i = 0; i < CMD_MAX; i++) {
        struct cmd *c = &cmds[i];
        int fds[4] = {c->err_fd, room ? c->out_fd[1] : -1, room ? c->out_fd[2] : -1,
                      c->in_len > 0 ? c->in_fd : -1};
        for (int k = 0; k < 4; k++) {
            pfd[n].fd = c->used ? fds[k] : -1;
            pfd[n].events = k == 3 ? POLLOUT : POLLIN;
            pfd[n].revents = 0;
            n++;
        }
    }
    return n;
}

/* The exec error pipe is readable: errno (exec failed: ERR) or EOF (it runs: STARTED). */
static void on_err_pipe(struct cmd *c) {
    int e = 0;
    ssize_t n = read(c->err_fd, &e, sizeof e);
    if (n < 0 && errno == EAGAIN)
        return;
    close_fd(&c->err_fd);
    if (n == (ssize_t)sizeof e) {
        char text[300];
        c->failed = 1;
        snprintf(text, sizeof text, "cannot run the command: %s", strerror(e));
        if (!c->detached)
            agent_send_err(c->id, e, text);
        if (c->main)
            agent_log("main workload failed to start: %s", strerror(e));
    } else if (!c->detached) {
        agent_send(frame, agent_enc_started(frame, sizeof frame, c->id, (uint32_t)c->pid));
    }
}

/* Output of stream s (1 or 2) is readable: one chunk as an OUT frame, or EOF. */
static void on_output(struct cmd *c, int s) {
    ssize_t n = read(c->out_fd[s], chunk, sizeof chunk);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        close_fd(&c->out_fd[s]);
        return;
    }
    if (!c->detached && !c->failed)
        agent_send(frame, agent_enc_out(frame, sizeof frame, c->id, (uint8_t)s, chunk, (size_t)n));
}

void cmds_poll_done(const struct pollfd *pfd, int n) {
    for (int i = 0; i < CMD_MAX && i * 4 < n; i++) {
        struct cmd *c = &cmds[i];
        const struct pollfd *p = pfd + i * 4;
        if (!c->used)
            continue;
        /* The error pipe first: STARTED goes out before any output. */
        if (p[0].fd >= 0 && p[0].revents != 0)
            on_err_pipe(c);
        if (c->err_fd >= 0)
            continue;
        for (int s = 1; s <= 2; s++)
            if (p[s].fd >= 0 && p[s].revents != 0 && c->out_fd[s] >= 0)
                on_output(c, s);
        if (p[3].fd >= 0 && p[3].revents != 0)
            stdin_flush(c);
    }
}

void cmds_reap(void) {
    for (;;) {
        int status = 0;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid <= 0)
            break;
        for (int i = 0; i < CMD_MAX; i++) {
            struct cmd *c = &cmds[i];
            if (c->used && !c->exited && c->pid == pid) {
                c->exited = 1;
                c->status = status;
                c->grace_from = agent_now_ms();
                close_fd(&c->in_fd);
                c->in_len = 0;
            }
        }
    }
}

/* Sends EXIT (unless exec failed or the connection is gone) and frees the slot. */
static void finish(struct cmd *c) {
    struct agent_exit_msg m = {0, 0, (uint8_t)c->timed_out};
    if (WIFEXITED(c->status)) {
        m.exit_code = WEXITSTATUS(c->status);
    } else {
        m.exit_code = -1;
        m.signal = WIFSIGNALED(c->status) ? (uint32_t)WTERMSIG(c->status) : 0;
    }
    if (!c->failed && !c->detached)
        agent_send(frame, agent_enc_exit(frame, sizeof frame, c->id, &m));
    if (c->main)
        agent_log("main workload exited: code %d signal %u", m.exit_code, m.signal);
    slot_free(c);
}

int cmds_tick(void) {
    int64_t now = agent_now_ms();
    int64_t next = -1;
    int room = agent_stream_room();
    for (int i = 0; i < CMD_MAX; i++) {
        struct cmd *c = &cmds[i];
        if (!c->used)
            continue;
        if (c->deadline != 0 && !c->exited && now >= c->deadline) {
            kill(-c->pid, SIGKILL);
            c->timed_out = 1;
            c->deadline = 0;
            if (agent_debug || c->main)
                agent_log("command %u timed out: process group %d killed", c->id, (int)c->pid);
        }
        if (c->exited && c->err_fd >= 0)
            on_err_pipe(c); /* the child is gone, so the pipe has its answer */
        if (c->exited && !room)
            c->grace_from = now; /* output held back by the host is not a stuck pipe */
        if (c->exited && (c->out_fd[1] >= 0 || c->out_fd[2] >= 0) &&
            now - c->grace_from >= EXIT_GRACE_MS) {
            close_fd(&c->out_fd[1]); /* a background child keeps the pipes: stop waiting */
            close_fd(&c->out_fd[2]);
        }
        if (c->exited && c->err_fd < 0 && c->out_fd[1] < 0 && c->out_fd[2] < 0) {
            finish(c);
            continue;
        }
        int64_t due = -1;
        if (c->deadline != 0 && !c->exited)
            due = c->deadline;
        else if (c->exited)
            due = c->grace_from + EXIT_GRACE_MS;
        if (due >= 0 && (next < 0 || due < next))
            next = due;
    }
    return next < 0 ? -1 : (int)(next > now ? next - now : 0);
}
