/* The beam_node type's config keys: name, code_paths, apps, erl_args, cookie and user. */
#include "backends/beam/beam_config.h"

#include <ctype.h>
#include <ei.h>
#include <stdlib.h>
#include <string.h>

#include "core/term_decode.h"

enum { K_NAME, K_CODE_PATHS, K_APPS, K_ERL_ARGS, K_COOKIE, K_USER, K_COUNT };

static const char *const KEYS[K_COUNT] = {
    [K_NAME] = "name", [K_CODE_PATHS] = "code_paths", [K_APPS] = "apps",
    [K_ERL_ARGS] = "erl_args", [K_COOKIE] = "cookie", [K_USER] = "user",
};

/* erl_args: a list of strings, or one binary split at spaces. *out as sbx_td_string_list. */
static int get_erl_args(const char *buf, int *idx, struct sbx_strv *out, struct sbx_badarg *err) {
    char *s = NULL, *save = NULL;
    struct sbx_strv v = {0, NULL};
    if (sbx_td_tag(buf, *idx) != ERL_BINARY_EXT)
        return sbx_td_string_list(buf, idx, "erl_args", 0, SBX_TD_ARG_MAX, out, err);
    if (sbx_td_nonempty(buf, idx, "erl_args", 0, SBX_TD_ARG_MAX, &s, err) != 0)
        return -1;
    size_t words = 1;
    for (const char *p = s; *p != '\0'; p++)
        words += *p == ' ';
    v.v = calloc(words + 1, sizeof *v.v);
    if (v.v == NULL) {
        sbx_td_fail(err, "erl_args", SBX_WHY_NO_MEMORY);
        goto err;
    }
    for (char *w = strtok_r(s, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
        v.v[v.n] = sbx_td_dup(w, strlen(w));
        if (v.v[v.n] == NULL) {
            sbx_td_fail(err, "erl_args", SBX_WHY_NO_MEMORY);
            goto err;
        }
        v.n++;
    }
    free(s);
    *out = v;
    return 0;
err:
    free(s);
    sbx_td_strv_free(&v);
    return -1;
}

/* A node name for beam_node: letters, digits, '_' and '-' before an optional @host. */
static int get_node_name(const char *buf, int *idx, char **out, struct sbx_badarg *err) {
    if (sbx_td_nonempty(buf, idx, "name", SBX_TD_ATOM, SBX_TD_NAME_MAX, out, err) != 0)
        return -1;
    for (const char *p = *out; *p != '\0' && *p != '@'; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-')) {
            sbx_td_fail(err, "name", SBX_WHY_INVALID_CHARACTERS);
            return -1;
        }
    if ((*out)[0] == '@') {
        sbx_td_fail(err, "name", SBX_WHY_EMPTY);
        return -1;
    }
    return 0;
}

/* Decodes the value of KEYS[k] into c (see struct sbx_config_schema). */
static int decode(size_t k, const char *buf, int *idx, struct sbx_config *c,
                  struct sbx_badarg *err) {
    switch (k) {
    case K_NAME: return get_node_name(buf, idx, &c->node_name, err);
    case K_CODE_PATHS:
        return sbx_td_string_list(buf, idx, KEYS[k], 0, SBX_TD_PATH_MAX, &c->code_paths, err);
    case K_APPS:
        return sbx_td_string_list(buf, idx, KEYS[k], SBX_TD_ATOM, SBX_TD_NAME_MAX, &c->apps, err);
    case K_ERL_ARGS: return get_erl_args(buf, idx, &c->erl_args, err);
    case K_COOKIE:
        return sbx_td_nonempty(buf, idx, KEYS[k], SBX_TD_ATOM, SBX_TD_NAME_MAX, &c->cookie, err);
    default: return sbx_config_decode_user(buf, idx, &c->user, err);
    }
}

/* Frees what decode stored (user goes with the common keys). */
static void beam_free(struct sbx_config *c) {
    free(c->node_name);
    free(c->cookie);
    sbx_td_strv_free(&c->code_paths);
    sbx_td_strv_free(&c->apps);
    sbx_td_strv_free(&c->erl_args);
    c->node_name = c->cookie = NULL;
}

const struct sbx_config_schema sbx_beam_config_schema = {
    .keys = KEYS, .nkeys = K_COUNT, .decode = decode, .finish = NULL, .free = beam_free,
};
