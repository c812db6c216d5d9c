/* Decoding and validating caller arguments (core/config.h): ids, types, commands, health
 * checks, the config keys every sandbox type shares, exec options, list filters, log
 * options, topics and paths. A type's own config keys are decoded by its backend
 * (struct sbx_config_schema); the toolkit all of them use is core/term_decode.c.
 *
 * Each public decoder builds into a local value and hands it over only on success; on
 * failure one cleanup path frees whatever had been built and the caller's *out is left
 * zeroed and *idx untouched. */
#include "core/config.h"

#include <ei.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/term_decode.h"

/* ---- limits -------------------------------------------------------------------------- */

#define CMD_ARGC_MAX    4096u          /* argv elements */
#define ENV_STR_MAX     (32u * 1024u)  /* each env key and value */
#define ENV_COUNT_MAX   4096u          /* env entries */
#define LABEL_STR_MAX   256u           /* each label key and value */
#define LABEL_COUNT_MAX 64u            /* labels */
#define USER_LEN_MAX    256u           /* a user name */
#define STDIN_LEN_MAX   (64u * 1024u * 1024u) /* exec stdin */
#define REL_PATH_MAX    1024u          /* copy_to / copy_from paths */

#define DAY_MS          86400000LL
#define TTL_MS_MAX      (3653LL * DAY_MS) /* ten years, leap days included */
#define UID_MAX_VALUE   4294967294LL      /* (uid_t)-1 means "no change" to the kernel */
#define OUTPUT_MAX      (256LL * 1024 * 1024)

static const struct sbx_td_kv_rules ENV_RULES = {0, ENV_STR_MAX, ENV_STR_MAX, ENV_COUNT_MAX, 1};
static const struct sbx_td_kv_rules LABEL_RULES = {SBX_TD_ATOM, LABEL_STR_MAX, LABEL_STR_MAX,
                                                   LABEL_COUNT_MAX, 0};

/* ---- ids and types ------------------------------------------------------------------- */

static const char *const TYPE_NAMES[] = {"process", "docker", "beam_node", "vm"};

/* Owns nothing: may c stand in an id (first: as its first character)? */
static int is_id_char(char c, int first) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return !first && (c == '_' || c == '.' || c == '-');
}

/* out is the caller's buffer; nothing is allocated past the call. */
int sbx_decode_id(const char *buf, int *idx, char out[SBX_ID_MAX + 1], struct sbx_badarg *err) {
    int i = *idx;
    char *s = NULL;
    size_t len = 0;
    const char *why = NULL;

    memset(out, 0, SBX_ID_MAX + 1);
    if (sbx_td_string(buf, &i, SBX_TD_ATOM, SBX_ID_MAX, &s, &len, &why) != 0) {
        if (why == SBX_WHY_CONTAINS_NUL)
            why = SBX_WHY_INVALID_CHARACTERS;
        goto err;
    }
    if (len == 0) {
        why = SBX_WHY_EMPTY;
        goto err;
    }
    for (size_t k = 0; k < len; k++)
        if (!is_id_char(s[k], k == 0)) {
            why = SBX_WHY_INVALID_CHARACTERS;
            goto err;
        }
    memcpy(out, s, len + 1);
    free(s);
    *idx = i;
    return 0;
err:
    free(s);
    sbx_td_fail(err, "id", why);
    return -1;
}

/* *out is the caller's; nothing is allocated. */
int sbx_decode_type(const char *buf, int *idx, enum sbx_type *out, struct sbx_badarg *err) {
    int k = 0;
    *out = SBX_TYPE_PROCESS;
    if (sbx_td_enum(buf, idx, "type", TYPE_NAMES, 4, &k, err) != 0)
        return -1;
    *out = (enum sbx_type)k;
    return 0;
}

/* ---- commands ------------------------------------------------------------------------ */

/* On success *out (owned by the caller, free it with the config or exec options) holds
 * argv; on failure it is left empty. */
int sbx_decode_cmd(const char *buf, int *idx, const char *field, struct sbx_strv *out,
                   struct sbx_badarg *err) {
    struct sbx_strv v = {0, NULL};
    int i = *idx, arity = 0;
    unsigned char t = sbx_td_tag(buf, i);
    const char *why = NULL;
    size_t len = 0;

    memset(out, 0, sizeof *out);
    if (t == ERL_NIL_EXT) {
        why = SBX_WHY_EMPTY;
        goto err;
    }
    /* A binary, or a charlist (a flat list of code points: no argv is a list of
     * integers, so there is no ambiguity), is one shell command line. */
    if (t == ERL_BINARY_EXT || t == ERL_STRING_EXT ||
        (t == ERL_LIST_EXT && sbx_td_is_int(sbx_td_tag(buf, i + 5)))) {
        v.v = calloc(4, sizeof *v.v);
        if (v.v == NULL) {
            why = SBX_WHY_NO_MEMORY;
            goto err;
        }
        v.n = 3; /* slots still NULL are freed as they are */
        if (sbx_td_string(buf, &i, 0, SBX_TD_ARG_MAX, &v.v[2], &len, &why) != 0)
            goto err;
        if (len == 0) {
            why = SBX_WHY_EMPTY;
            goto err;
        }
        v.v[0] = sbx_td_dup("/bin/sh", 7);
        v.v[1] = sbx_td_dup("-c", 2);
        if (v.v[0] == NULL || v.v[1] == NULL) {
            why = SBX_WHY_NO_MEMORY;
            goto err;
        }
        goto done;
    }
    if (t != ERL_LIST_EXT || ei_decode_list_header(buf, &i, &arity) != 0) {
        why = SBX_WHY_NOT_A_LIST;
        goto err;
    }
    if ((size_t)arity > CMD_ARGC_MAX) {
        why = SBX_WHY_TOO_MANY;
        goto err;
    }
    v.v = calloc((size_t)arity + 1, sizeof *v.v);
    if (v.v == NULL) {
        why = SBX_WHY_NO_MEMORY;
        goto err;
    }
    for (int k = 0; k < arity; k++) {
        if (sbx_td_string(buf, &i, 0, SBX_TD_ARG_MAX, &v.v[k], &len, &why) != 0)
            goto err;
        v.n++;
        if (k == 0 && len == 0) {
            why = SBX_WHY_EMPTY; /* the program */
            goto err;
        }
    }
    if (sbx_td_list_close(buf, &i, arity) != 0) {
        why = SBX_WHY_NOT_A_LIST; /* improper */
        goto err;
    }
done:
    *out = v;
    *idx = i;
    return 0;
err:
    sbx_td_strv_free(&v);
    sbx_td_fail(err, field, why);
    return -1;
}

/* ---- health checks ------------------------------------------------------------------- */

enum { HC_TYPE, HC_PORT, HC_PATH, HC_STATUS, HC_CMD, HC_TIMEOUT_MS, HC_INTERVAL_MS, HC_COUNT };

#define HC_BIT(t) (1u << (t))
#define HC_ALL (HC_BIT(SBX_HC_TCP) | HC_BIT(SBX_HC_HTTP) | HC_BIT(SBX_HC_EXEC))

static const struct sbx_td_key HC_KEYS[HC_COUNT] = {
    [HC_TYPE] = {"type", HC_ALL},
    [HC_PORT] = {"port", HC_BIT(SBX_HC_TCP) | HC_BIT(SBX_HC_HTTP)},
    [HC_PATH] = {"path", HC_BIT(SBX_HC_HTTP)},
    [HC_STATUS] = {"status", HC_BIT(SBX_HC_HTTP)},
    [HC_CMD] = {"cmd", HC_BIT(SBX_HC_EXEC)},
    [HC_TIMEOUT_MS] = {"timeout_ms", HC_ALL},
    [HC_INTERVAL_MS] = {"interval_ms", HC_ALL},
};

/* index + 1 == enum sbx_hc_type */
static const char *const HC_TYPE_NAMES[] = {"tcp", "http", "exec"};

/* Frees what h owns and zeroes it. */
static void health_free(struct sbx_health_check *h) {
    free(h->path);
    sbx_td_strv_free(&h->cmd);
    memset(h, 0, sizeof *h);
}

/* A health_check map at *idx into *out (owned by the caller on success; left zeroed on
 * failure). Keys that do not apply to the check's type are unknown_key. */
static int decode_health(const char *buf, int *idx, struct sbx_health_check *out,
                         struct sbx_badarg *err) {
    struct sbx_health_check h;
    struct sbx_td_pos pos[HC_COUNT];
    int end = *idx, i, k = 0;
    long long v;

    memset(&h, 0, sizeof h);
    memset(out, 0, sizeof *out);
    if (sbx_td_scan_map(buf, &end, "health_check", HC_KEYS, HC_COUNT, HC_ALL, pos, err) != 0)
        goto err;
    if (pos[HC_TYPE].val < 0) {
        sbx_td_fail(err, "type", SBX_WHY_MISSING);
        goto err;
    }
    i = pos[HC_TYPE].val;
    if (sbx_td_enum(buf, &i, "type", HC_TYPE_NAMES, 3, &k, err) != 0)
        goto err;
    h.type = (enum sbx_hc_type)(k + 1);
    for (int d = 0; d < HC_COUNT; d++)
        if (pos[d].key >= 0 && (HC_KEYS[d].mask & HC_BIT(h.type)) == 0) {
            sbx_td_fail_key(err, "health_check", buf, pos[d].key, pos[d].key_end,
                            SBX_WHY_UNKNOWN_KEY);
            goto err;
        }
    h.status = 200;
    h.timeout_ms = 30000;
    h.interval_ms = 250;
    if (h.type == SBX_HC_TCP || h.type == SBX_HC_HTTP) {
        if (pos[HC_PORT].val < 0) {
            sbx_td_fail(err, "port", SBX_WHY_MISSING);
            goto err;
        }
        i = pos[HC_PORT].val;
        if (sbx_td_int(buf, &i, "port", 1, 65535, &v, err) != 0)
            goto err;
        h.port = (int)v;
    }
    if (h.type == SBX_HC_HTTP) {
        if (pos[HC_PATH].val >= 0) {
            i = pos[HC_PATH].val;
            if (sbx_td_nonempty(buf, &i, "path", 0, SBX_TD_PATH_MAX, &h.path, err) != 0)
                goto err;
            if (h.path[0] != '/') {
                sbx_td_fail(err, "path", SBX_WHY_NOT_ABSOLUTE);
                goto err;
            }
        } else if ((h.path = sbx_td_dup("/", 1)) == NULL) {
            sbx_td_fail(err, "path", SBX_WHY_NO_MEMORY);
            goto err;
        }
        if (pos[HC_STATUS].val >= 0) {
            i = pos[HC_STATUS].val;
            if (sbx_td_int(buf, &i, "status", 100, 599, &v, err) != 0)
                goto err;
            h.status = (int)v;
        }
    }
    if (h.type == SBX_HC_EXEC) {
        if (pos[HC_CMD].val < 0) {
            sbx_td_fail(err, "cmd", SBX_WHY_MISSING);
            goto err;
        }
        i = pos[HC_CMD].val;
        if (sbx_decode_cmd(buf, &i, "cmd", &h.cmd, err) != 0)
            goto err;
    }
    if (pos[HC_TIMEOUT_MS].val >= 0) {
        i = pos[HC_TIMEOUT_MS].val;
        if (sbx_td_int(buf, &i, "timeout_ms", 1, DAY_MS, &v, err) != 0)
            goto err;
        h.timeout_ms = (int)v;
    }
    if (pos[HC_INTERVAL_MS].val >= 0) {
        i = pos[HC_INTERVAL_MS].val;
        if (sbx_td_int(buf, &i, "interval_ms", 10, 60000, &v, err) != 0)
            goto err;
        h.interval_ms = (int)v;
    }
    *out = h;
    *idx = end;
    return 0;
err:
    health_free(&h);
    return -1;
}

/* ---- create configs ------------------------------------------------------------------ */

/* The keys every sandbox type takes; a type's own keys come from its schema. */
enum {
    K_CMD, K_ENV, K_CWD, K_LABELS, K_MEMORY_MB, K_CPUS, K_PIDS_LIMIT, K_TTL_MS, K_OWNER,
    K_HEALTH_CHECK, K_RESTART, K_MAX_RESTARTS, K_WORKSPACE, K_METRICS_INTERVAL_MS,
    K_COUNT
};

/* A type's schema may add at most this many keys. */
#define SCHEMA_KEYS_MAX 32

static const char *const CONFIG_KEYS[K_COUNT] = {
    [K_CMD] = "cmd",
    [K_ENV] = "env",
    [K_CWD] = "cwd",
    [K_LABELS] = "labels",
    [K_MEMORY_MB] = "memory_mb",
    [K_CPUS] = "cpus",
    [K_PIDS_LIMIT] = "pids_limit",
    [K_TTL_MS] = "ttl_ms",
    [K_OWNER] = "owner",
    [K_HEALTH_CHECK] = "health_check",
    [K_RESTART] = "restart",
    [K_MAX_RESTARTS] = "max_restarts",
    [K_WORKSPACE] = "workspace",
    [K_METRICS_INTERVAL_MS] = "metrics_interval_ms",
};

static const char *const RESTART_NAMES[] = {"never", "on_failure", "always"};

/* See config.h. *out is the caller's on success. */
int sbx_config_decode_user(const char *buf, int *idx, char **out, struct sbx_badarg *err) {
    long long uid;
    char digits[24];
    if (!sbx_td_is_int(sbx_td_tag(buf, *idx)))
        return sbx_td_nonempty(buf, idx, "user", 0, USER_LEN_MAX, out, err);
    if (sbx_td_int(buf, idx, "user", 0, UID_MAX_VALUE, &uid, err) != 0)
        return -1;
    int n = snprintf(digits, sizeof digits, "%lld", uid);
    *out = sbx_td_dup(digits, (size_t)n);
    if (*out == NULL) {
        sbx_td_fail(err, "user", SBX_WHY_NO_MEMORY);
        return -1;
    }
    return 0;
}

/* A pid at *idx: its encoded bytes copied into *out (the caller's on success). */
static int get_owner(const char *buf, int *idx, char **out, size_t *out_len,
                     struct sbx_badarg *err) {
    int i = *idx;
    unsigned char t = sbx_td_tag(buf, i);
    if ((t != ERL_PID_EXT && t != ERL_NEW_PID_EXT) || ei_skip_term(buf, &i) != 0) {
        sbx_td_fail(err, "owner", SBX_WHY_NOT_A_PID);
        return -1;
    }
    *out = malloc((size_t)(i - *idx));
    if (*out == NULL) {
        sbx_td_fail(err, "owner", SBX_WHY_NO_MEMORY);
        return -1;
    }
    memcpy(*out, buf + *idx, (size_t)(i - *idx));
    *out_len = (size_t)(i - *idx);
    *idx = i;
    return 0;
}

/* A workspace: a non-empty absolute host path. *out is the caller's on success, NULL on
 * failure. */
static int get_workspace(const char *buf, int *idx, char **out, struct sbx_badarg *err) {
    char *s = NULL;
    if (sbx_td_nonempty(buf, idx, "workspace", 0, SBX_TD_PATH_MAX, &s, err) != 0)
        goto err;
    if (s[0] != '/') {
        sbx_td_fail(err, "workspace", SBX_WHY_NOT_ABSOLUTE);
        goto err;
    }
    *out = s;
    return 0;
err:
    free(s);
    *out = NULL;
    return -1;
}

/* Decodes the value of common key k at buf[i] into c, which owns whatever is stored
 * (freed with sbx_config_free whether or not this succeeds). */
static int config_value(const char *buf, int i, int k, struct sbx_config *c,
                        struct sbx_badarg *err) {
    const char *f = CONFIG_KEYS[k];
    long long v;
    int e = 0;

    switch (k) {
    case K_CMD: return sbx_decode_cmd(buf, &i, f, &c->cmd, err);
    case K_ENV: return sbx_td_kvv(buf, &i, f, &ENV_RULES, &c->env, err);
    case K_CWD: return sbx_td_nonempty(buf, &i, f, 0, SBX_TD_PATH_MAX, &c->cwd, err);
    case K_LABELS: return sbx_td_kvv(buf, &i, f, &LABEL_RULES, &c->labels, err);
    case K_MEMORY_MB:
        if (sbx_td_int(buf, &i, f, 4, 1048576, &v, err) != 0)
            return -1;
        c->memory_mb = (long)v;
        return 0;
    case K_CPUS: return sbx_td_number(buf, &i, f, 0.0, 1024.0, &c->cpus, err);
    case K_PIDS_LIMIT:
        if (sbx_td_int(buf, &i, f, 1, 1000000, &v, err) != 0)
            return -1;
        c->pids_limit = (long)v;
        return 0;
    case K_TTL_MS:
        if (sbx_td_int(buf, &i, f, 1, TTL_MS_MAX, &v, err) != 0)
            return -1;
        c->ttl_ms = v;
        return 0;
    case K_OWNER: return get_owner(buf, &i, &c->owner, &c->owner_len, err);
    case K_HEALTH_CHECK: return decode_health(buf, &i, &c->health, err);
    case K_RESTART:
        if (sbx_td_enum(buf, &i, f, RESTART_NAMES, 3, &e, err) != 0)
            return -1;
        c->restart = (enum sbx_restart)e;
        return 0;
    case K_MAX_RESTARTS:
        if (sbx_td_int(buf, &i, f, 0, 1000000, &v, err) != 0)
            return -1;
        c->max_restarts = (int)v;
        return 0;
    case K_WORKSPACE: return get_workspace(buf, &i, &c->workspace, err);
    case K_METRICS_INTERVAL_MS:
        if (sbx_td_int(buf, &i, f, 100, 3600000, &v, err) != 0)
            return -1;
        c->metrics_interval_ms = v;
        return 0;
    default: sbx_td_fail(err, "config", SBX_WHY_UNKNOWN_KEY); return -1;
    }
}

/* On success *out owns its strings (sbx_config_free); on failure it is left zeroed.
 * schema (static, borrowed; NULL: the common keys only) is remembered in *out. */
int sbx_config_decode(const char *buf, int *idx, enum sbx_type type,
                      const struct sbx_config_schema *schema, struct sbx_config *out,
                      struct sbx_badarg *err) {
    struct sbx_config c;
    struct sbx_td_key keys[K_COUNT + SCHEMA_KEYS_MAX] = {{NULL, 0}};
    struct sbx_td_pos pos[K_COUNT + SCHEMA_KEYS_MAX];
    size_t nkeys = K_COUNT + (schema != NULL ? schema->nkeys : 0);
    int start = *idx, end = *idx;

    memset(&c, 0, sizeof c);
    memset(out, 0, sizeof *out);
    if ((unsigned)type > SBX_TYPE_VM) {
        sbx_td_fail(err, "type", SBX_WHY_UNKNOWN_VALUE);
        goto err;
    }
    if (nkeys > K_COUNT + SCHEMA_KEYS_MAX) {
        sbx_td_fail(err, "config", SBX_WHY_TOO_MANY); /* a schema past the bound: a bug */
        goto err;
    }
    c.type = type;
    c.schema = schema;
    c.max_restarts = 5;
    c.metrics_interval_ms = 1000;
    for (size_t k = 0; k < nkeys; k++)
        keys[k] = (struct sbx_td_key){k < K_COUNT ? CONFIG_KEYS[k] : schema->keys[k - K_COUNT], 1};
    if (sbx_td_scan_map(buf, &end, "config", keys, nkeys, 1, pos, err) != 0)
        goto err;
    for (size_t k = 0; k < nkeys; k++) {
        if (pos[k].val < 0)
            continue;
        int i = pos[k].val;
        if (k < K_COUNT ? config_value(buf, i, (int)k, &c, err) != 0
                        : schema->decode(k - K_COUNT, buf, &i, &c, err) != 0)
            goto err;
    }
    if (schema != NULL && schema->finish != NULL && schema->finish(&c, err) != 0)
        goto err;
    c.raw = malloc((size_t)(end - start));
    if (c.raw == NULL) {
        sbx_td_fail(err, "config", SBX_WHY_NO_MEMORY);
        goto err;
    }
    memcpy(c.raw, buf + start, (size_t)(end - start));
    c.raw_len = (size_t)(end - start);
    *out = c;
    *idx = end;
    return 0;
err:
    sbx_config_free(&c);
    return -1;
}

/* Frees everything c owns (its type's part through its schema) and zeroes it. */
void sbx_config_free(struct sbx_config *c) {
    if (c == NULL)
        return;
    if (c->schema != NULL && c->schema->free != NULL)
        c->schema->free(c);
    sbx_td_strv_free(&c->cmd);
    sbx_td_kvv_free(&c->env);
    free(c->cwd);
    sbx_td_kvv_free(&c->labels);
    free(c->owner);
    health_free(&c->health);
    free(c->workspace);
    free(c->user);
    free(c->raw);
    memset(c, 0, sizeof *c);
}

/* ---- exec options -------------------------------------------------------------------- */

enum { X_TIMEOUT_MS, X_ENV, X_CWD, X_STDIN, X_MAX_OUTPUT_BYTES, X_COUNT };

static const struct sbx_td_key EXEC_KEYS[X_COUNT] = {
    [X_TIMEOUT_MS] = {"timeout_ms", 1},
    [X_ENV] = {"env", 1},
    [X_CWD] = {"cwd", 1},
    [X_STDIN] = {"stdin", 1},
    [X_MAX_OUTPUT_BYTES] = {"max_output_bytes", 1},
};

/* On success *out owns its strings (sbx_exec_opts_free); on failure it is left zeroed.
 * buf NULL: the defaults (idx is not used). */
int sbx_exec_opts_decode(const char *buf, int *idx, struct sbx_exec_opts *out,
                         struct sbx_badarg *err) {
    struct sbx_exec_opts o;
    struct sbx_td_pos pos[X_COUNT];
    const char *why = NULL;
    long long v;
    int end, i;

    memset(&o, 0, sizeof o);
    memset(out, 0, sizeof *out);
    o.timeout_ms = 30000;
    o.max_output_bytes = 1024 * 1024;
    if (buf == NULL)
        goto done;
    end = *idx;
    if (sbx_td_scan_map(buf, &end, "opts", EXEC_KEYS, X_COUNT, 1, pos, err) != 0)
        goto err;
    if ((i = pos[X_TIMEOUT_MS].val) >= 0) {
        if (sbx_td_int(buf, &i, "timeout_ms", 1, DAY_MS, &v, err) != 0)
            goto err;
        o.timeout_ms = v;
    }
    if ((i = pos[X_ENV].val) >= 0 && sbx_td_kvv(buf, &i, "env", &ENV_RULES, &o.env, err) != 0)
        goto err;
    if ((i = pos[X_CWD].val) >= 0 &&
        sbx_td_nonempty(buf, &i, "cwd", 0, SBX_TD_PATH_MAX, &o.cwd, err) != 0)
        goto err;
    if ((i = pos[X_STDIN].val) >= 0 &&
        sbx_td_string(buf, &i, SBX_TD_NUL, STDIN_LEN_MAX, &o.stdin_data, &o.stdin_len, &why) != 0) {
        sbx_td_fail(err, "stdin", why);
        goto err;
    }
    if ((i = pos[X_MAX_OUTPUT_BYTES].val) >= 0) {
        if (sbx_td_int(buf, &i, "max_output_bytes", 0, OUTPUT_MAX, &v, err) != 0)
            goto err;
        o.max_output_bytes = (size_t)v;
    }
    *idx = end;
done:
    *out = o;
    return 0;
err:
    sbx_exec_opts_free(&o);
    return -1;
}

/* Frees everything o owns and zeroes it. */
void sbx_exec_opts_free(struct sbx_exec_opts *o) {
    if (o == NULL)
        return;
    sbx_td_kvv_free(&o->env);
    free(o->cwd);
    free(o->stdin_data);
    memset(o, 0, sizeof *o);
}

/* ---- list filters -------------------------------------------------------------------- */

enum { F_TYPE, F_STATUS, F_LABELS, F_COUNT };

static const struct sbx_td_key FILTER_KEYS[F_COUNT] = {
    [F_TYPE] = {"type", 1},
    [F_STATUS] = {"status", 1},
    [F_LABELS] = {"labels", 1},
};

/* In the order of enum sbx_status (core/sandbox.h). */
static const char *const STATUS_NAMES[] = {"starting", "running", "paused", "stopping",
                                           "stopped",  "exited",  "error"};

/* On success *out owns its labels (sbx_list_filter_free); on failure it is left zeroed.
 * buf NULL: no filter. */
int sbx_list_filter_decode(const char *buf, int *idx, struct sbx_list_filter *out,
                           struct sbx_badarg *err) {
    struct sbx_list_filter f;
    struct sbx_td_pos pos[F_COUNT];
    int end, i, k = 0;

    memset(&f, 0, sizeof f);
    memset(out, 0, sizeof *out);
    f.status = -1;
    if (buf == NULL)
        goto done;
    end = *idx;
    if (sbx_td_scan_map(buf, &end, "filter", FILTER_KEYS, F_COUNT, 1, pos, err) != 0)
        goto err;
    if ((i = pos[F_TYPE].val) >= 0) {
        if (sbx_td_enum(buf, &i, "type", TYPE_NAMES, 4, &k, err) != 0)
            goto err;
        f.has_type = 1;
        f.type = (enum sbx_type)k;
    }
    if ((i = pos[F_STATUS].val) >= 0) {
        if (sbx_td_enum(buf, &i, "status", STATUS_NAMES, 7, &k, err) != 0)
            goto err;
        f.status = k;
    }
    if ((i = pos[F_LABELS].val) >= 0 &&
        sbx_td_kvv(buf, &i, "labels", &LABEL_RULES, &f.labels, err) != 0)
        goto err;
    *idx = end;
done:
    *out = f;
    return 0;
err:
    sbx_list_filter_free(&f);
    return -1;
}

/* Frees everything f owns and zeroes it. */
void sbx_list_filter_free(struct sbx_list_filter *f) {
    if (f == NULL)
        return;
    sbx_td_kvv_free(&f->labels);
    memset(f, 0, sizeof *f);
}

/* ---- log options --------------------------------------------------------------------- */

enum { L_TAIL, L_SINCE, L_COUNT };

static const struct sbx_td_key LOGS_KEYS[L_COUNT] = {
    [L_TAIL] = {"tail", 1},
    [L_SINCE] = {"since", 1},
};

/* *out is the caller's; nothing is allocated. buf NULL: the defaults. */
int sbx_logs_opts_decode(const char *buf, int *idx, struct sbx_logs_opts *out,
                         struct sbx_badarg *err) {
    struct sbx_logs_opts o = {100, 0};
    struct sbx_td_pos pos[L_COUNT];
    long long v;
    int end, i;

    memset(out, 0, sizeof *out);
    if (buf == NULL)
        goto done;
    end = *idx;
    if (sbx_td_scan_map(buf, &end, "opts", LOGS_KEYS, L_COUNT, 1, pos, err) != 0)
        goto err;
    if ((i = pos[L_TAIL].val) >= 0) {
        if (sbx_td_int(buf, &i, "tail", 0, 100000, &v, err) != 0)
            goto err;
        o.tail = (size_t)v;
    }
    if ((i = pos[L_SINCE].val) >= 0) {
        if (sbx_td_int(buf, &i, "since", 0, INT64_MAX, &v, err) != 0)
            goto err;
        o.since = v;
    }
    *idx = end;
done:
    *out = o;
    return 0;
err:
    return -1;
}

/* ---- topics -------------------------------------------------------------------------- */

/* In the order of enum sbx_topic. */
static const char *const TOPIC_NAMES[] = {"status", "log", "metrics", "processes", "trace"};

/* *out is the caller's; nothing is allocated. */
int sbx_decode_topics(const char *buf, int *idx, unsigned *out, struct sbx_badarg *err) {
    unsigned bits = 0;
    int i = *idx, arity = 0, k = 0;
    int r = sbx_td_list_open(buf, &i, &arity);

    *out = 0;
    if (r == 1) {
        sbx_td_fail(err, "topics", SBX_WHY_UNKNOWN_VALUE); /* a list of small integers */
        return -1;
    }
    if (r != 0) {
        sbx_td_fail(err, "topics", SBX_WHY_NOT_A_LIST);
        return -1;
    }
    if (arity == 0) {
        sbx_td_fail(err, "topics", SBX_WHY_EMPTY);
        return -1;
    }
    for (int e = 0; e < arity; e++) {
        if (sbx_td_enum(buf, &i, "topics", TOPIC_NAMES, 5, &k, err) != 0)
            return -1;
        bits |= 1u << k;
    }
    if (sbx_td_list_close(buf, &i, arity) != 0) {
        sbx_td_fail(err, "topics", SBX_WHY_NOT_A_LIST);
        return -1;
    }
    *out = bits;
    *idx = i;
    return 0;
}

/* ---- relative paths ------------------------------------------------------------------ */

/* out is the caller's (cap bytes); gets the normalised path: "." components and
 * repeated or trailing slashes dropped. */
static int decode_path(const char *buf, int *idx, char *out, size_t cap, int allow_abs,
                       struct sbx_badarg *err);

/* See config.h. */
int sbx_decode_rel_path(const char *buf, int *idx, char *out, size_t cap,
                        struct sbx_badarg *err) {
    return decode_path(buf, idx, out, cap, 0, err);
}

/* See config.h. An absolute path keeps its leading '/'. */
int sbx_decode_path(const char *buf, int *idx, char *out, size_t cap, struct sbx_badarg *err) {
    return decode_path(buf, idx, out, cap, 1, err);
}

/* Both path decoders: normalised (no "." or empty components), no "..", no NUL. */
static int decode_path(const char *buf, int *idx, char *out, size_t cap, int allow_abs,
                       struct sbx_badarg *err) {
    int i = *idx;
    char *s = NULL;
    size_t len = 0, w = 0;
    const char *why = NULL;

    if (cap > 0)
        out[0] = '\0';
    if (sbx_td_string(buf, &i, 0, REL_PATH_MAX, &s, &len, &why) != 0)
        goto err;
    if (len == 0) {
        why = SBX_WHY_EMPTY;
        goto err;
    }
    int abs = s[0] == '/';
    if (abs && !allow_abs) {
        why = SBX_WHY_ABSOLUTE;
        goto err;
    }
    /* Normalise in place: w <= the read position, always. An absolute path keeps its
     * leading '/' at s[0]. */
    for (size_t r = 0; r < len;) {
        size_t e = r;
        while (e < len && s[e] != '/')
            e++;
        size_t n = e - r;
        if (n == 2 && s[r] == '.' && s[r + 1] == '.') {
            why = SBX_WHY_DOT_DOT;
            goto err;
        }
        if (n > 0 && !(n == 1 && s[r] == '.')) {
            if (w > 0 || abs)
                s[w++] = '/';
            memmove(s + w, s + r, n);
            w += n;
        }
        r = e + 1;
    }
    if (w == 0) {
        why = SBX_WHY_EMPTY; /* "." or "./" names the workspace itself */
        goto err;
    }
    if (w + 1 > cap) {
        why = SBX_WHY_TOO_LONG;
        goto err;
    }
    memcpy(out, s, w);
    out[w] = '\0';
    free(s);
    *idx = i;
    return 0;
err:
    free(s);
    sbx_td_fail(err, "path", why);
    return -1;
}

