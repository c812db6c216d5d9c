/* The docker backend's pause and resume: the Engine's POST /containers/{id}/pause and
 * /unpause (the engine freezes the container's cgroup), answered from the loop like every
 * engine call; and what the engine's inspect says about State.Paused, for a container
 * paused or unpaused outside sandboxd (`docker pause`). */
#include <stdio.h>
#include <string.h>

#include "backends/docker/dk.h"
#include "core/pause.h"

/* POST pause/unpause answered (204): ok, else the engine's status and message. The
 * request is gone with its sandbox (dk_cancel_all) before this could reach a freed one. */
static void answered(struct dk_op *op, int status, const char *body, size_t len,
                     const char *terr) {
    struct dk_state *ds = op->ds;
    sbx_value_done_fn done = ds->pause_done;
    (void)len;
    ds->pause_op = NULL;
    ds->pause_done = NULL;
    ds->pause_seq++;
    if (status == 204) {
        ei_x_buff ok;
        ei_x_new(&ok);
        ei_x_encode_atom(&ok, "ok");
        done(ds->sb, op->u64, ok.buff, (size_t)ok.index, NULL);
        ei_x_free(&ok);
        return;
    }
    struct sbx_err err = {0};
    dk_set_http_err(&err, status, body, terr);
    done(ds->sb, op->u64, NULL, 0, &err);
}

/* Sends POST /containers/{id}/<what> for sb. 0 (answered later), or -1 with *err: the
 * engine is down, no container runs, or one of these requests is under way already. */
static int request(struct sbx_sandbox *sb, const char *what, uint64_t key, sbx_value_done_fn done,
                   struct sbx_err *err) {
    struct dk_state *ds = sb->bstate;
    struct dk_engine *e = dk_engine_peek();
    char path[200];
    if (!dk_engine_check_up(e, err))
        return -1;
    if (ds == NULL || ds->cid[0] == '\0' || ds->phase != DK_RUNNING) {
        err->reason_atom = "not_running";
        return -1;
    }
    err->reason_atom = "backend";
    if (ds->pause_op != NULL) {
        snprintf(err->detail, sizeof err->detail, "a pause or resume is under way");
        return -1;
    }
    snprintf(path, sizeof path, "/containers/%s/%s", ds->cid, what);
    ds->pause_op = dk_request(e, ds, "POST", path, 0, NULL, 0, NULL, 30000, 0, NULL, answered, NULL);
    if (ds->pause_op == NULL) {
        snprintf(err->detail, sizeof err->detail, "cannot send the request to the engine");
        return -1;
    }
    ds->pause_op->u64 = key;
    ds->pause_done = done;
    return 0;
}

/* See dk.h. */
int dk_pause(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    return request(sb, "pause", key, done, err);
}

/* See dk.h. */
int dk_resume(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done, struct sbx_err *err) {
    return request(sb, "unpause", key, done, err);
}

/* See dk.h. Only a running container's state counts; ours under way wins. */
void dk_pause_inspected(struct dk_state *ds, json_t *state, unsigned seq) {
    json_t *paused = json_object_get(state, "Paused");
    if (ds->pause_op != NULL || seq != ds->pause_seq || !json_is_boolean(paused) ||
        ds->phase != DK_RUNNING)
        return;
    sbx_sandbox_pause_seen(ds->sb, json_is_true(paused));
}
