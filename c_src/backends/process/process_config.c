/* The process type's config keys: isolation and user, and cmd required. */
#include "backends/process/process_config.h"

#include "core/term_decode.h"

enum { K_ISOLATION, K_USER, K_COUNT };

static const char *const KEYS[K_COUNT] = {[K_ISOLATION] = "isolation", [K_USER] = "user"};
static const char *const ISOLATION_NAMES[] = {"none", "namespaces"};

/* Decodes the value of KEYS[k] into c (see struct sbx_config_schema). */
static int decode(size_t k, const char *buf, int *idx, struct sbx_config *c,
                  struct sbx_badarg *err) {
    int e = 0;
    if (k == K_USER)
        return sbx_config_decode_user(buf, idx, &c->user, err);
    if (sbx_td_enum(buf, idx, KEYS[k], ISOLATION_NAMES, 2, &e, err) != 0)
        return -1;
    c->isolation = (enum sbx_isolation)e;
    return 0;
}

/* A process sandbox runs its cmd: {cmd, missing} without one. Owns nothing. */
static int finish(struct sbx_config *c, struct sbx_badarg *err) {
    if (c->cmd.n > 0)
        return 0;
    sbx_td_fail(err, "cmd", SBX_WHY_MISSING);
    return -1;
}

/* user is freed with the common keys: nothing of the type's own to free. */
const struct sbx_config_schema sbx_process_config_schema = {
    .keys = KEYS, .nkeys = K_COUNT, .decode = decode, .finish = finish, .free = NULL,
};
