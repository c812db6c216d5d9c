/* Naming a beam_node sandbox's node, its cookie, the erl command line, and asking the
 * local epmd whether a name is taken. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/beam/beam.h"
#include "core/sandbox.h"
#include "dist/epmd.h"
#include "dist/handshake.h"

static const char *erl_option; /* --erl */

/* See beam.h. */
void sbx_beam_set_erl(const char *path) { erl_option = path; }

/* See beam.h. A name with a slash is checked as is; a bare name is searched in $PATH. */
int sbx_beam_find_erl(char *out, size_t cap, const char **why) {
    const char *want = erl_option != NULL ? erl_option : getenv("SANDBOXD_ERL");
    if (want == NULL || *want == '\0')
        want = "erl";
    if (strchr(want, '/') != NULL) {
        if (access(want, X_OK) != 0 || strlen(want) >= cap) {
            *why = "erl (--erl / SANDBOXD_ERL) is not executable";
            return -1;
        }
        snprintf(out, cap, "%s", want);
        return 0;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path != '\0') {
        const char *colon = strchr(path, ':');
        size_t dlen = colon != NULL ? (size_t)(colon - path) : strlen(path);
        if (dlen > 0 && dlen + 1 + strlen(want) < cap) {
            snprintf(out, cap, "%.*s/%s", (int)dlen, path, want);
            if (access(out, X_OK) == 0)
                return 0;
        }
        path += dlen + (colon != NULL);
    }
    *why = "erl not found in PATH";
    return -1;
}

/* 20 random upper-case letters, like erl's own generated cookie. */
static void random_cookie(char *out, size_t cap) {
    unsigned char r[20];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
        for (size_t i = 0; i < sizeof r; i++)
            r[i] = (unsigned char)(rand() & 0xff);
    }
    size_t n = cap - 1 < sizeof r ? cap - 1 : sizeof r;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)('A' + r[i] % 26);
    out[n] = '\0';
}

/* See beam.h. The config strings were checked by core/config.c (length, no NUL). */
int sbx_beam_target_for(const struct sbx_sandbox *sb, const char *self_node,
                        struct sbx_beam_target *t, int *long_names, struct sbx_err *err) {
    const char *host = strchr(self_node, '@');
    const char *name = sb->cfg.node_name;
    char dflt[SBX_ID_MAX + 16];
    int n;

    memset(t, 0, sizeof *t);
    err->reason_atom = "backend";
    if (name == NULL) {
        snprintf(dflt, sizeof dflt, "sandbox_%s", sb->id);
        name = dflt;
    }
    if (strchr(name, '@') != NULL)
        n = snprintf(t->node, sizeof t->node, "%s", name);
    else
        n = snprintf(t->node, sizeof t->node, "%s%s", name, host != NULL ? host : "@localhost");
    if (n < 0 || (size_t)n >= sizeof t->node || !sbx_node_name_valid(t->node, strlen(t->node))) {
        snprintf(err->detail, sizeof err->detail, "invalid node name");
        return -1;
    }
    /* Only letters, digits, '_' and '-' before the @: what erl accepts in -sname. */
    for (const char *p = t->node; *p != '@'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            snprintf(err->detail, sizeof err->detail, "invalid node name");
            return -1;
        }
    }
    *long_names = strchr(strchr(t->node, '@'), '.') != NULL;
    if (sb->cfg.cookie != NULL)
        snprintf(t->cookie, sizeof t->cookie, "%s", sb->cfg.cookie);
    else
        random_cookie(t->cookie, sizeof t->cookie);
    return 0;
}

/* See beam.h. The one place that names the node's HOME. */
int sbx_beam_home(const struct sbx_sandbox *sb, char *out, size_t cap) {
    int n = snprintf(out, cap, "%s/home", sb->dir);
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

/* See beam.h. Written to a fresh temporary file then renamed over the old one, so a
 * read-only (0400) cookie from an earlier start is replaced, never opened for writing.
 * HOME and the file belong to the node's own user (sbx_sandbox_own_fd), who alone can
 * read it: erl runs as that user. The cookie is never logged. */
int sbx_beam_write_cookie(const struct sbx_sandbox *sb, const char *cookie, struct sbx_err *err) {
    char home[600];
    size_t len = strlen(cookie);
    int dfd = -1, fd = -1, rc = -1;

    err->reason_atom = "backend";
    snprintf(err->detail, sizeof err->detail, "cannot write the node's .erlang.cookie");
    if (sbx_beam_home(sb, home, sizeof home) != 0)
        goto done;
    if (mkdir(home, 0700) != 0 && errno != EEXIST)
        goto done;
    dfd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0 || sbx_sandbox_own_fd(sb, dfd) != 0 || fchmod(dfd, 0700) != 0)
        goto done;
    (void)unlinkat(dfd, ".erlang.cookie.new", 0);
    fd = openat(dfd, ".erlang.cookie.new", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                0400);
    if (fd < 0)
        goto done;
    if (write(fd, cookie, len) != (ssize_t)len || sbx_sandbox_own_fd(sb, fd) != 0) {
        (void)unlinkat(dfd, ".erlang.cookie.new", 0);
        goto done;
    }
    if (close(fd) != 0) {
        fd = -1;
        (void)unlinkat(dfd, ".erlang.cookie.new", 0);
        goto done;
    }
    fd = -1;
    if (renameat(dfd, ".erlang.cookie.new", dfd, ".erlang.cookie") != 0) {
        (void)unlinkat(dfd, ".erlang.cookie.new", 0);
        goto done;
    }
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

/* Sets key=value in env, replacing an existing entry for key. 0, or -1 (no memory: env
 * unchanged). The strings are copied; env keeps owning its entries. */
static int env_set(struct sbx_kvv *env, const char *key, const char *value) {
    char *v = strdup(value);
    if (v == NULL)
        return -1;
    for (size_t i = 0; i < env->n; i++) {
        if (strcmp(env->v[i].key, key) == 0) {
            free(env->v[i].value);
            env->v[i].value = v;
            return 0;
        }
    }
    char *k = strdup(key);
    struct sbx_kv *grown = k != NULL ? realloc(env->v, (env->n + 1) * sizeof *grown) : NULL;
    if (grown == NULL) {
        free(k);
        free(v);
        return -1;
    }
    env->v = grown;
    env->v[env->n].key = k;
    env->v[env->n].value = v;
    env->n++;
    return 0;
}

/* See beam.h. The new argv is owned by sb->cfg (freed with it). The cookie is not on it:
 * erl reads it from $HOME/.erlang.cookie (sbx_beam_write_cookie), so no /proc/<pid>/cmdline
 * or environ shows it. */
int sbx_beam_build_cmd(struct sbx_sandbox *sb, const char *erl, const struct sbx_beam_target *t,
                       int long_names, struct sbx_err *err) {
    size_t n = 5 + sb->cfg.erl_args.n, i = 0;
    char **v = NULL;
    char home[600];
    if (sbx_beam_home(sb, home, sizeof home) != 0 || env_set(&sb->cfg.env, "HOME", home) != 0)
        goto oom;
    v = calloc(n + 1, sizeof *v);
    if (v == NULL)
        goto oom;
    const char *fixed[] = {erl, long_names ? "-name" : "-sname", t->node, "-noshell", "-noinput"};
    for (; i < 5; i++)
        if ((v[i] = strdup(fixed[i])) == NULL)
            goto oom;
    for (size_t j = 0; j < sb->cfg.erl_args.n; j++, i++)
        if ((v[i] = strdup(sb->cfg.erl_args.v[j])) == NULL)
            goto oom;
    for (size_t j = 0; j < sb->cfg.cmd.n; j++)
        free(sb->cfg.cmd.v[j]);
    free(sb->cfg.cmd.v);
    sb->cfg.cmd.v = v;
    sb->cfg.cmd.n = n;
    return 0;
oom:
    if (v != NULL) {
        for (size_t j = 0; j < n; j++)
            free(v[j]);
        free(v);
    }
    err->reason_atom = "backend";
    snprintf(err->detail, sizeof err->detail, "out of memory");
    return -1;
}

/* See beam.h. One PORT_PLEASE2 over a fresh connection to 127.0.0.1:4369. */
int sbx_beam_epmd_registered(const char *node_name) {
    unsigned char req[300], rep[600];
    size_t got = 0;
    int rc = -1, fd = -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(4369)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int len = sbx_epmd_encode_port_please(req, sizeof req, node_name);
    if (len <= 0)
        goto done;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        goto done;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
        goto done;
    if (write(fd, req, (size_t)len) != len)
        goto done;
    for (;;) {
        uint16_t port;
        const char *why;
        ssize_t r = read(fd, rep + got, sizeof rep - got);
        if (r <= 0) {
            /* epmd closes after a "not registered" answer it has fully sent. */
            rc = got >= 2 ? 0 : -1;
            break;
        }
        got += (size_t)r;
        int p = sbx_epmd_parse_port_reply(rep, got, &port, &why);
        if (p == 1) {
            rc = 1;
            break;
        }
        if (p < 0) {
            rc = 0;
            break;
        }
        if (got == sizeof rep)
            break;
    }
done:
    if (fd >= 0)
        close(fd);
    return rc;
}
