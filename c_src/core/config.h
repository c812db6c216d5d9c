/* Decoding and validating what callers pass: sandbox ids, create configs, exec options,
 * list filters, log options. Every decoder reads a term that has already been
 * bounds-checked (dist/term_check.h) and, on a bad argument, names the field and why
 * with static atom names, for {error, {badarg, Field, Why}}. */
#ifndef SBX_CORE_CONFIG_H
#define SBX_CORE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define SBX_ID_MAX 63

enum sbx_type { SBX_TYPE_PROCESS = 0, SBX_TYPE_DOCKER, SBX_TYPE_BEAM_NODE, SBX_TYPE_VM };
enum sbx_restart { SBX_RESTART_NEVER = 0, SBX_RESTART_ON_FAILURE, SBX_RESTART_ALWAYS };
enum sbx_isolation { SBX_ISOLATION_NONE = 0, SBX_ISOLATION_NAMESPACES };
enum sbx_hc_type { SBX_HC_NONE = 0, SBX_HC_TCP, SBX_HC_HTTP, SBX_HC_EXEC };

/* Why an argument was refused: field and why are static atom names. When field_term is
 * set, it is the offending map key exactly as the caller sent it (encoded, no version
 * byte, pointing into the caller's buffer) and stands for Field instead of field. */
struct sbx_badarg {
    const char *field;
    const char *why;
    const char *field_term;
    size_t field_term_len;
};

/* A NULL-terminated vector of NUL-terminated strings (argv). n excludes the NULL. */
struct sbx_strv {
    size_t n;
    char **v;
};

struct sbx_kv {
    char *key;
    char *value;
};

struct sbx_kvv {
    size_t n;
    struct sbx_kv *v;
};

struct sbx_health_check {
    enum sbx_hc_type type;
    int port;             /* tcp, http */
    char *path;           /* http, default "/" */
    int status;           /* http: expected status, default 200 */
    struct sbx_strv cmd;  /* exec */
    int timeout_ms;       /* overall deadline for becoming healthy, default 30000 */
    int interval_ms;      /* between probes, default 250 */
};

enum sbx_pull { SBX_PULL_IF_MISSING = 0, SBX_PULL_NEVER, SBX_PULL_ALWAYS };

/* A published port: host 0 lets Docker choose. proto "tcp" or "udp". */
struct sbx_port {
    int host;
    int container;
    char proto[4];
};

struct sbx_config;

/* The config keys one sandbox type adds to the common ones, decoded by its own backend
 * (backends/NAME/NAME_config.c) and found in its operations table (backends/backend.h).
 * A new type brings its schema and touches no core file: its values go where its decode
 * puts them (ext, owned through free). */
struct sbx_config_schema {
    const char *const *keys; /* the key names (at most 32) */
    size_t nkeys;
    /* Decodes the value of keys[k] at buf[*idx] into c. What it stores is c's, freed by
     * free below even when a later key fails. 0, or -1 with *err. */
    int (*decode)(size_t k, const char *buf, int *idx, struct sbx_config *c,
                  struct sbx_badarg *err);
    /* After every key: required keys and rules across keys (NULL: none). 0 or -1. */
    int (*finish)(struct sbx_config *c, struct sbx_badarg *err);
    /* Frees what decode stored (NULL: nothing). */
    void (*free)(struct sbx_config *c);
};

struct sbx_config {
    enum sbx_type type;
    const struct sbx_config_schema *schema; /* static; NULL: common keys only */
    void *ext;             /* the type's own values, if its schema keeps them apart */
    struct sbx_strv cmd;   /* a single binary Cmd becomes ["/bin/sh", "-c", Cmd] */
    struct sbx_kvv env;
    char *cwd;
    struct sbx_kvv labels;
    long memory_mb;        /* 0: unset */
    double cpus;           /* 0: unset */
    long pids_limit;       /* 0: unset */
    int64_t ttl_ms;        /* 0: unset */
    char *owner;           /* the owner pid, encoded (no version byte); NULL: none */
    size_t owner_len;
    struct sbx_health_check health;
    enum sbx_restart restart;
    int max_restarts;      /* default 5 */
    char *workspace;       /* host directory; NULL: a fresh one in the state dir */
    int64_t metrics_interval_ms; /* default 1000 */
    /* Set by the process and beam_node schemas, read by the core's identity code. */
    enum sbx_isolation isolation;
    char *user;            /* user name or numeric uid; NULL: sandboxd's own */
    int has_beam;          /* the workload is a BEAM node reachable by sandboxd */
    /* Filled by the docker schema (backends/docker/docker_config.c), freed by it. */
    char *image;
    struct sbx_port *ports;
    size_t nports;
    struct sbx_strv volumes; /* Docker Binds: "host:container" or "host:container:ro" */
    char *network;
    enum sbx_pull pull;      /* default if_missing */
    /* Filled by the beam_node schema (backends/beam/beam_config.c) and docker's
     * `beam => #{name, cookie}`, freed by them. */
    char *node_name;         /* beam_node `name` / docker beam.name; NULL: default */
    char *cookie;            /* NULL: generated (beam_node) */
    struct sbx_strv code_paths;
    struct sbx_strv apps;
    struct sbx_strv erl_args;
    char *raw;             /* the config map exactly as given (encoded, no version) */
    size_t raw_len;
};

/* Id: a binary, atom or charlist matching [A-Za-z0-9][A-Za-z0-9_.-]{0,62}. Writes the
 * NUL-terminated id into out. 0, or -1 with *err = {id, not_a_string | empty |
 * too_long | invalid_characters}. Advances *idx past the term on success. */
int sbx_decode_id(const char *buf, int *idx, char out[SBX_ID_MAX + 1], struct sbx_badarg *err);

/* Type: the atom process | docker | beam_node | vm (or the same as a binary). */
int sbx_decode_type(const char *buf, int *idx, enum sbx_type *out, struct sbx_badarg *err);

/* Decodes a create config (a map) for type: the common keys, and those of type's schema
 * (NULL: none; pass the backend's). Keys are atoms or binaries. An unknown key is
 * {badarg, Key, unknown_key} with Key as sent (field_term); a key that is neither atom
 * nor binary is {badarg, config, bad_key}; a config that is not a map is
 * {badarg, config, not_a_map}. Checks every value's type and range, and the schema's
 * required keys (process: cmd, else {badarg, cmd, missing}).
 * On success 0 and *out owns its strings (free with sbx_config_free). On failure -1,
 * *err set, *out left empty. */
int sbx_config_decode(const char *buf, int *idx, enum sbx_type type,
                      const struct sbx_config_schema *schema, struct sbx_config *out,
                      struct sbx_badarg *err);

/* `user` (process, beam_node): a non-empty string, or a uid kept as its decimal string.
 * *out is the caller's on success. */
int sbx_config_decode_user(const char *buf, int *idx, char **out, struct sbx_badarg *err);

/* Frees what a config owns; safe on a zeroed or failed one. */
void sbx_config_free(struct sbx_config *c);

/* A command: a list of binaries/charlists (argv, at least one element) or a single
 * binary or charlist (run with /bin/sh -c). field names the argument in errors. */
int sbx_decode_cmd(const char *buf, int *idx, const char *field, struct sbx_strv *out,
                   struct sbx_badarg *err);

struct sbx_exec_opts {
    int64_t timeout_ms;       /* default 30000 */
    struct sbx_kvv env;
    char *cwd;
    char *stdin_data;         /* NULL: no input (stdin is /dev/null) */
    size_t stdin_len;
    size_t max_output_bytes;  /* default 1 MiB, per stream */
};

/* exec/3 options map (exec/2 uses the defaults: pass NULL buf). */
int sbx_exec_opts_decode(const char *buf, int *idx, struct sbx_exec_opts *out,
                         struct sbx_badarg *err);
void sbx_exec_opts_free(struct sbx_exec_opts *o);

struct sbx_list_filter {
    int has_type;
    enum sbx_type type;
    int status; /* -1: any; else an enum sbx_status value (core/sandbox.h) */
    struct sbx_kvv labels;
};

int sbx_list_filter_decode(const char *buf, int *idx, struct sbx_list_filter *out,
                           struct sbx_badarg *err);
void sbx_list_filter_free(struct sbx_list_filter *f);

struct sbx_logs_opts {
    size_t tail;   /* default 100 */
    int64_t since; /* ms since epoch; 0: from the start */
};

int sbx_logs_opts_decode(const char *buf, int *idx, struct sbx_logs_opts *out,
                         struct sbx_badarg *err);

/* Topics for subscribe: a list of atoms from status, log, metrics, processes, trace.
 * Sets bits (1 << SBX_TOPIC_*). */
enum sbx_topic { SBX_TOPIC_STATUS = 0, SBX_TOPIC_LOG, SBX_TOPIC_METRICS, SBX_TOPIC_PROCESSES,
                 SBX_TOPIC_TRACE };
int sbx_decode_topics(const char *buf, int *idx, unsigned *out, struct sbx_badarg *err);

/* A relative path inside a sandbox's workspace: no absolute paths, no "..", no NUL,
 * at most 1024 bytes. */
int sbx_decode_rel_path(const char *buf, int *idx, char *out, size_t cap, struct sbx_badarg *err);

/* The same, absolute paths allowed too (for backends that copy through their own API):
 * "/" alone is {badarg, path, empty}. */
int sbx_decode_path(const char *buf, int *idx, char *out, size_t cap, struct sbx_badarg *err);

#endif
