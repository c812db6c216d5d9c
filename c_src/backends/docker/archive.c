/* copy_to / copy_from through the archive endpoints: a one-file tar PUT at "/" (Docker
 * makes missing parent directories), and the first entry of the tar GET answers.
 * Relative paths are under /app (the workspace), absolute ones are container paths.
 * Path errors answer with reason "badarg" and the why atom in detail, for api_files.c. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/dk.h"
#include "core/sandbox.h"

/* See dk.h. */
void dk_container_path(const char *path, char *out, size_t cap) {
    if (path[0] == '/')
        snprintf(out, cap, "%s", path);
    else
        snprintf(out, cap, "/app/%s", path);
}

/* See dk.h. on_done gets the PUT's answer (200 when written). NULL with *err. */
struct dk_op *dk_put_file(struct dk_engine *e, struct dk_state *ds, const char *abs,
                          const char *data, size_t len, dk_done_fn on_done, void *arg,
                          struct sbx_err *err) {
    char *tar = NULL, path[200];
    size_t tar_len = 0;
    struct dk_op *op = NULL;
    while (*abs == '/')
        abs++;
    if (dk_tar_make(abs, data, len, &tar, &tar_len) != 0) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "cannot make the tar stream");
        goto done;
    }
    snprintf(path, sizeof path, "/containers/%s/archive?path=%%2F", ds->cid);
    op = dk_request(e, ds, "PUT", path, 0, tar, tar_len, "application/x-tar", 120000, 0, NULL,
                    on_done, arg);
    if (op == NULL) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "cannot send the archive request");
    }
done:
    free(tar);
    return op;
}

/* Fills err for an archive answer: path errors as badarg, the rest from Docker. */
static void archive_err(struct sbx_err *err, int status, const char *body, const char *terr) {
    memset(err, 0, sizeof *err);
    if (status == 404) {
        err->reason_atom = "badarg";
        snprintf(err->detail, sizeof err->detail, "enoent");
    } else if (status == 0 && terr != NULL && strncmp(terr, "too large:", 10) == 0) {
        err->reason_atom = "badarg";
        snprintf(err->detail, sizeof err->detail, "too_large");
    } else if (status == 400 && body != NULL && strstr(body, "not a directory") != NULL) {
        err->reason_atom = "badarg";
        snprintf(err->detail, sizeof err->detail, "enotdir");
    } else {
        dk_set_http_err(err, status, body, terr);
    }
}

/* PUT answered. */
static void copy_to_done(struct dk_op *op, int status, const char *body, size_t len,
                         const char *terr) {
    struct dk_query *q = op->arg;
    struct sbx_err err;
    (void)len;
    q->op = NULL;
    if (status == 200) {
        ei_x_buff x;
        ei_x_new(&x);
        ei_x_encode_atom(&x, "ok");
        dk_query_answer(op->ds, q, x.buff, (size_t)x.index, NULL);
        ei_x_free(&x);
        return;
    }
    archive_err(&err, status, body, terr);
    dk_query_answer(op->ds, q, NULL, 0, &err);
}

/* A sandbox whose container can take or give files; 0 or -1 with *err. */
static int ready(struct sbx_sandbox *sb, struct sbx_err *err) {
    struct dk_state *ds = sb->bstate;
    if (!dk_engine_check_up(dk_engine_peek(), err))
        return -1;
    if (ds == NULL || ds->cid[0] == '\0' || ds->phase == DK_CREATING) {
        err->reason_atom = "not_running";
        return -1;
    }
    return 0;
}

/* See dk.h (backend copy_to). */
int dk_copy_to(struct sbx_sandbox *sb, const char *path, const char *data, size_t len,
               uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    struct dk_state *ds = sb->bstate;
    char abs[1200];
    if (ready(sb, err) != 0)
        return -1;
    struct dk_query *q = dk_query_new(ds, DK_Q_COPY, key, done);
    if (q == NULL) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "out of memory");
        return -1;
    }
    dk_container_path(path, abs, sizeof abs);
    q->op = dk_put_file(dk_engine_peek(), ds, abs, data, len, copy_to_done, q, err);
    if (q->op == NULL) {
        dk_query_cancel(ds, key);
        return -1;
    }
    return 0;
}

/* GET answered: the first entry of the tar. */
static void copy_from_done(struct dk_op *op, int status, const char *body, size_t len,
                           const char *terr) {
    struct dk_query *q = op->arg;
    struct sbx_err err;
    char *data = NULL;
    size_t dlen = 0;
    const char *why = NULL;
    q->op = NULL;
    if (status != 200) {
        archive_err(&err, status, body, terr);
        dk_query_answer(op->ds, q, NULL, 0, &err);
        return;
    }
    if (dk_tar_read_first(body, len, DK_COPY_MAX, &data, &dlen, &why) != 0) {
        memset(&err, 0, sizeof err);
        err.reason_atom = "badarg";
        snprintf(err.detail, sizeof err.detail, "%s", why);
        dk_query_answer(op->ds, q, NULL, 0, &err);
        return;
    }
    ei_x_buff x;
    ei_x_new(&x);
    ei_x_encode_binary(&x, data, (long)dlen);
    free(data);
    dk_query_answer(op->ds, q, x.buff, (size_t)x.index, NULL);
    ei_x_free(&x);
}

/* See dk.h (backend copy_from). */
int dk_copy_from(struct sbx_sandbox *sb, const char *path, uint64_t key,
                 sbx_value_done_fn done, struct sbx_err *err) {
    struct dk_state *ds = sb->bstate;
    char abs[1200], enc[3700], req[3900];
    if (ready(sb, err) != 0)
        return -1;
    dk_container_path(path, abs, sizeof abs);
    if (dk_urlenc(abs, enc, sizeof enc) != 0) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "path too long");
        return -1;
    }
    struct dk_query *q = dk_query_new(ds, DK_Q_COPY, key, done);
    if (q == NULL) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "out of memory");
        return -1;
    }
    snprintf(req, sizeof req, "/containers/%s/archive?path=%s", ds->cid, enc);
    q->op = dk_request(dk_engine_peek(), ds, "GET", req, 0, NULL, 0, NULL, 120000,
                       DK_COPY_MAX + ((size_t)1 << 20), NULL, copy_from_done, q);
    if (q->op == NULL) {
        dk_query_cancel(ds, key);
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "cannot send the archive request");
        return -1;
    }
    return 0;
}
