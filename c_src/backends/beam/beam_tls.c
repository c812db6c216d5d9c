/* A beam_node sandbox of a TLS sandboxd (--proto-dist inet_tls): its node speaks the same
 * distribution, with the same options. The certificates, keys and CA files named by
 * sandboxd's optfile are copied into the node's own HOME (0400, owned by the node's user,
 * who may not be able to read the originals), an optfile naming those copies is written
 * beside them, and erl is told `-proto_dist inet_tls -ssl_dist_optfile <it>`. No key or
 * passphrase is ever on the command line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/beam/beam.h"
#include "core/sandbox.h"
#include "dist/tls_opts.h"

#define TLS_FILE_MAX (1u << 20)

static const struct sbx_tls_opts *tls_opts; /* set by main, or NULL: plain distribution */

/* See beam.h. */
void sbx_beam_set_tls(const struct sbx_tls_opts *opts) { tls_opts = opts; }

/* Writes data[0..len) to dfd/name through name.new and a rename, mode 0400, owned by the
 * sandbox's user. 0 or -1; a partial file is removed. */
static int put_file(const struct sbx_sandbox *sb, int dfd, const char *name, const char *data,
                    size_t len) {
    char tmp[128];
    int fd = -1, rc = -1;
    snprintf(tmp, sizeof tmp, "%s.new", name);
    (void)unlinkat(dfd, tmp, 0);
    fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0)
        goto done;
    if (write(fd, data, len) != (ssize_t)len || sbx_sandbox_own_fd(sb, fd) != 0)
        goto done;
    int c = close(fd);
    fd = -1;
    if (c != 0 || renameat(dfd, tmp, dfd, name) != 0)
        goto done;
    rc = 0;
done:
    if (fd >= 0)
        close(fd);
    if (rc != 0)
        (void)unlinkat(dfd, tmp, 0);
    return rc;
}

/* Copies the file at src (read as sandboxd) into dfd/name (see put_file) and rewrites path
 * to home/name. An empty path is left alone. 0, or -1. */
static int copy_in(const struct sbx_sandbox *sb, int dfd, const char *home, const char *name,
                   char *path, size_t cap) {
    char *buf = NULL;
    size_t n = 0;
    int rc = -1;
    if (path[0] == '\0')
        return 0;
    FILE *f = fopen(path, "re");
    if (f == NULL)
        goto done;
    buf = malloc(TLS_FILE_MAX + 1);
    if (buf == NULL)
        goto done;
    n = fread(buf, 1, TLS_FILE_MAX + 1, f);
    if (ferror(f) || n > TLS_FILE_MAX || put_file(sb, dfd, name, buf, n) != 0)
        goto done;
    if (snprintf(path, cap, "%s/%s", home, name) >= (int)cap)
        goto done;
    rc = 0;
done:
    free(buf);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* Appends the strings of add[] to sb->cfg.cmd. 0, or -1 (no memory: cmd unchanged). */
static int cmd_append(struct sbx_sandbox *sb, const char *const *add, size_t k) {
    char **v = realloc(sb->cfg.cmd.v, (sb->cfg.cmd.n + k + 1) * sizeof *v);
    if (v == NULL)
        return -1;
    sb->cfg.cmd.v = v;
    for (size_t i = 0; i < k; i++) {
        v[sb->cfg.cmd.n + i] = strdup(add[i]);
        if (v[sb->cfg.cmd.n + i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(v[sb->cfg.cmd.n + j]);
            v[sb->cfg.cmd.n] = NULL;
            return -1;
        }
    }
    sb->cfg.cmd.n += k;
    v[sb->cfg.cmd.n] = NULL;
    return 0;
}

/* See beam.h. The HOME exists (sbx_beam_write_cookie ran). */
int sbx_beam_tls_setup(struct sbx_sandbox *sb, struct sbx_err *err) {
    struct sbx_tls_opts o;
    char home[600], optfile[700];
    char *text = NULL;
    size_t tlen = 0;
    FILE *mem = NULL;
    int dfd = -1, rc = -1;

    if (tls_opts == NULL)
        return 0;
    err->reason_atom = "backend";
    snprintf(err->detail, sizeof err->detail, "cannot give the node its TLS files");
    o = *tls_opts;
    if (sbx_beam_home(sb, home, sizeof home) != 0)
        goto done;
    dfd = open(home, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        goto done;
    if (copy_in(sb, dfd, home, "tls_server_cert.pem", o.server.certfile, sizeof o.server.certfile) ||
        copy_in(sb, dfd, home, "tls_server_key.pem", o.server.keyfile, sizeof o.server.keyfile) ||
        copy_in(sb, dfd, home, "tls_server_ca.pem", o.server.cacertfile, sizeof o.server.cacertfile) ||
        copy_in(sb, dfd, home, "tls_client_cert.pem", o.client.certfile, sizeof o.client.certfile) ||
        copy_in(sb, dfd, home, "tls_client_key.pem", o.client.keyfile, sizeof o.client.keyfile) ||
        copy_in(sb, dfd, home, "tls_client_ca.pem", o.client.cacertfile, sizeof o.client.cacertfile))
        goto done;
    mem = open_memstream(&text, &tlen);
    if (mem == NULL || sbx_tls_opts_write(mem, &o) != 0)
        goto done;
    if (fclose(mem) != 0) {
        mem = NULL;
        goto done;
    }
    mem = NULL;
    if (put_file(sb, dfd, "ssl_dist.conf", text, tlen) != 0)
        goto done;
    snprintf(optfile, sizeof optfile, "%s/ssl_dist.conf", home);
    const char *add[] = {"-proto_dist", "inet_tls", "-ssl_dist_optfile", optfile};
    if (cmd_append(sb, add, 4) != 0)
        goto done;
    rc = 0;
done:
    if (mem != NULL)
        fclose(mem);
    free(text);
    if (dfd >= 0)
        close(dfd);
    return rc;
}
