/* pause(Id) and resume(Id): the status `paused`, its events, and the backend's
 * freeze/thaw operation under way (see pause.h). */
#include "core/pause.h"

#include <stdlib.h>
#include <string.h>

#include <ei.h>

#include "core/sandbox.h"
#include "util/log.h"

/* A pause or resume under way: sb->pause, owned by the sandbox until it ends. */
struct sbx_pause {
    int resume;             /* 0 pausing, 1 resuming */
    uint64_t key;           /* the caller's */
    sbx_pause_done_fn done;
    int in_call;            /* inside the backend's pause/resume */
    int finished;           /* ended inside that call: result below */
    int failed;
    struct sbx_err err;
};

/* Fills err with a bare reason atom (static). */
static void set_reason(struct sbx_err *err, const char *atom) {
    memset(err, 0, sizeof *err);
    err->reason_atom = atom;
}

/* The backend's answer to our pause/resume (backend.h sbx_value_done_fn): the status
 * changes when the sandbox is still where the operation left it (running for a pause,
 * paused for a resume); a stop that came meanwhile makes it `not_running`. The caller is
 * answered here, or by sbx_sandbox_pause when this runs inside the backend's call. */
static void backend_done(struct sbx_sandbox *sb, uint64_t key, const char *term, size_t len,
                         const struct sbx_err *err) {
    struct sbx_pause *op = sb->pause;
    struct sbx_err why;
    const struct sbx_err *res = NULL;
    (void)term;
    (void)len;
    if (op == NULL || op->key != key)
        return; /* not ours (dropped already) */
    sb->pause = NULL;
    enum sbx_status from = op->resume ? SBX_ST_PAUSED : SBX_ST_RUNNING;
    if (err != NULL) {
        why = *err;
        res = &why;
    } else if (sb->status != from) {
        set_reason(&why, "not_running");
        res = &why;
    } else {
        sbx_sandbox_set_status_atom(sb, op->resume ? SBX_ST_RUNNING : SBX_ST_PAUSED,
                                    op->resume ? "resumed" : "paused");
    }
    if (op->in_call) {
        op->finished = 1;
        op->failed = res != NULL;
        if (res != NULL)
            op->err = *res;
        return; /* sbx_sandbox_pause answers and frees */
    }
    op->done(sb, op->key, res);
    free(op);
}

/* See pause.h. */
int sbx_sandbox_pause(struct sbx_sandbox *sb, int resume, uint64_t key, sbx_pause_done_fn done,
                      struct sbx_err *err) {
    int (*fn)(struct sbx_sandbox *, uint64_t, sbx_value_done_fn, struct sbx_err *);
    struct sbx_pause *op = NULL;
    int rc = -1;

    fn = sb->backend == NULL ? NULL : resume ? sb->backend->resume : sb->backend->pause;
    if (fn == NULL) {
        set_reason(err, "unsupported");
        goto done;
    }
    if (!resume && (sb->status == SBX_ST_PAUSED || sb->pause != NULL)) {
        set_reason(err, "paused");
        goto done;
    }
    if (!resume && (sb->status != SBX_ST_RUNNING || sb->destroying)) {
        set_reason(err, "not_running");
        goto done;
    }
    if (resume && (sb->status != SBX_ST_PAUSED || sb->pause != NULL || sb->destroying)) {
        set_reason(err, "not_paused");
        goto done;
    }
    op = calloc(1, sizeof *op);
    if (op == NULL) {
        set_reason(err, "limit_reached");
        goto done;
    }
    op->resume = resume;
    op->key = key;
    op->done = done;
    op->in_call = 1;
    sb->pause = op;
    if (fn(sb, key, backend_done, err) != 0) {
        if (sb->pause == op)
            sb->pause = NULL;
        goto done;
    }
    op->in_call = 0;
    if (!op->finished) {
        op = NULL; /* sb->pause owns it now */
        rc = 0;
        goto done;
    }
    if (op->failed)
        *err = op->err;
    rc = op->failed ? -1 : 1;
done:
    free(op);
    return rc;
}

/* See pause.h. */
int sbx_pause_blocks(const struct sbx_sandbox *sb) {
    return sb->status == SBX_ST_PAUSED || sb->pause != NULL;
}

/* The answer of the thaw stop asks for: nobody waits for it. */
static void thaw_done(struct sbx_sandbox *sb, uint64_t key, const char *term, size_t len,
                      const struct sbx_err *err) {
    (void)key;
    (void)term;
    (void)len;
    if (err != NULL)
        SBX_WARN("cannot thaw the sandbox", "id=%s why=\"%s\"", sb->id,
                 err->detail[0] != '\0' ? err->detail : err->reason_atom);
}

/* See pause.h. A pause under way is left alone: stopping thaws on its own (the freezer's
 * kill pass, Docker's stop, QMP quit). */
void sbx_pause_before_stop(struct sbx_sandbox *sb) {
    struct sbx_err err;
    memset(&err, 0, sizeof err);
    if (sb->status != SBX_ST_PAUSED || sb->pause != NULL || sb->backend == NULL ||
        sb->backend->resume == NULL)
        return;
    if (sb->backend->resume(sb, 0, thaw_done, &err) != 0)
        thaw_done(sb, 0, NULL, 0, &err);
}

/* See pause.h. Only where the backend can tell (its paused operation). */
void sbx_pause_before_start(struct sbx_sandbox *sb) {
    struct sbx_err err;
    memset(&err, 0, sizeof err);
    if (sb->backend == NULL || sb->backend->paused == NULL || sb->backend->resume == NULL ||
        sb->backend->paused(sb) != 1)
        return;
    if (sb->backend->resume(sb, 0, thaw_done, &err) != 0)
        thaw_done(sb, 0, NULL, 0, &err);
}

/* See pause.h. */
void sbx_sandbox_pause_seen(struct sbx_sandbox *sb, int frozen) {
    if (sb->pause != NULL || sb->destroying)
        return;
    if (frozen && sb->status == SBX_ST_RUNNING)
        sbx_sandbox_set_status_atom(sb, SBX_ST_PAUSED, "external");
    else if (!frozen && sb->status == SBX_ST_PAUSED)
        sbx_sandbox_set_status_atom(sb, SBX_ST_RUNNING, "external");
}

/* See pause.h. Asks the backend (its paused operation) and changes nothing itself. */
int sbx_pause_adopted_status(struct sbx_sandbox *sb, int journalled_paused) {
    int frozen = sb->backend != NULL && sb->backend->paused != NULL ? sb->backend->paused(sb) : -1;
    if (frozen < 0)
        frozen = journalled_paused;
    return frozen ? SBX_ST_PAUSED : SBX_ST_RUNNING;
}

/* See pause.h. */
void sbx_pause_gone(struct sbx_sandbox *sb) {
    struct sbx_pause *op = sb->pause;
    struct sbx_err err;
    if (op == NULL)
        return;
    sb->pause = NULL;
    set_reason(&err, "not_found");
    op->done(sb, op->key, &err);
    free(op);
}
