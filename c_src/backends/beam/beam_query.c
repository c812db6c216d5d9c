/* metrics and processes of a beam_node sandbox: one remote call each to the helper module
 * sbx_beam_helper (src/, shipped compiled in priv/), loaded into the node with
 * code:load_binary the first time it is missing. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backends/beam/beam.h"
#include "core/core.h"
#include "core/sandbox.h"
#include "rpc/remote.h"
#include "util/clock.h"

#define HELPER "sbx_beam_helper"
#define QUERY_MS 10000
#define PRIV_MAX (16 * 1024 * 1024)

/* A metrics/processes query under way; owned by its bnode's list. */
struct bquery {
    struct bquery *next;
    uint64_t id;       /* the remote calls' key */
    uint64_t key;      /* the caller's */
    sbx_value_done_fn done;
    int metrics;       /* else processes */
    int loaded;        /* the helper was loaded for this query already */
};

static uint64_t next_query_id = 1;

static void query_done(uint64_t id, const struct sbx_remote_result *res);
static void load_done(uint64_t id, const struct sbx_remote_result *res);

/* Finds the query with that id and its bnode; NULL if it was cancelled or finished. */
static struct bquery *find_query(uint64_t id, struct bnode **bn_out) {
    for (struct bnode *bn = sbx_beam_list(); bn != NULL; bn = bn->next)
        for (struct bquery *q = bn->queries; q != NULL; q = q->next)
            if (q->id == id) {
                *bn_out = bn;
                return q;
            }
    return NULL;
}

/* Unlinks q from bn and frees it. */
static void query_free(struct bnode *bn, struct bquery *q) {
    for (struct bquery **pp = &bn->queries; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == q) {
            *pp = q->next;
            break;
        }
    }
    free(q);
}

/* See beam.h. */
void sbx_beam_queries_cancel(struct bnode *bn, uint64_t key, int all) {
    struct sbx_node *node = sbx_core_get()->node;
    struct bquery **pp = &bn->queries;
    while (*pp != NULL) {
        struct bquery *q = *pp;
        if (all || q->key == key) {
            sbx_remote_cancel(node, query_done, q->id);
            sbx_remote_cancel(node, load_done, q->id);
            *pp = q->next;
            free(q);
        } else {
            pp = &q->next;
        }
    }
}

/* See beam.h. Looks in $SANDBOXD_PRIV_DIR, next to the binary (priv/sandboxd) and in
 * ../../../priv from it (_build/c/<variant>/sandboxd). */
int sbx_beam_priv_file(const char *file, char **buf, size_t *len) {
    char exe[PATH_MAX], path[PATH_MAX + 300];
    const char *dirs[3] = {getenv("SANDBOXD_PRIV_DIR"), NULL, NULL};
    char d1[PATH_MAX], d2[PATH_MAX + 20];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(d1, sizeof d1, "%s", exe);
            snprintf(d2, sizeof d2, "%s/../../../priv", exe);
            dirs[1] = d1;
            dirs[2] = d2;
        }
    }
    for (int i = 0; i < 3; i++) {
        if (dirs[i] == NULL || dirs[i][0] == '\0')
            continue;
        snprintf(path, sizeof path, "%s/%s", dirs[i], file);
        FILE *f = fopen(path, "rb");
        if (f == NULL)
            continue;
        char *b = NULL;
        long sz = -1;
        if (fseek(f, 0, SEEK_END) == 0)
            sz = ftell(f);
        if (sz > 0 && sz <= PRIV_MAX && fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)sz)) != NULL &&
            fread(b, 1, (size_t)sz, f) == (size_t)sz) {
            fclose(f);
            *buf = b;
            *len = (size_t)sz;
            return 0;
        }
        free(b);
        fclose(f);
    }
    return -1;
}

/* Sends the query's call: sbx_beam_helper:processes() or metrics(PrevReds, PrevTs, OsMap). */
static int send_query(struct bnode *bn, struct bquery *q) {
    struct sbx_node *node = sbx_core_get()->node;
    ei_x_buff a;
    int rc;
    ei_x_new(&a);
    if (q->metrics) {
        struct sbx_err err = {0};
        ei_x_encode_list_header(&a, 3);
        ei_x_encode_longlong(&a, bn->last_reds);
        ei_x_encode_longlong(&a, bn->last_ts);
        if (sbx_backend_process.metrics(bn->sb, &a, &err) != 0)
            ei_x_encode_map_header(&a, 0);
    } else {
        ei_x_encode_list_header(&a, 0);
    }
    ei_x_encode_empty_list(&a);
    rc = sbx_remote_call(node, &bn->target, HELPER, q->metrics ? "metrics" : "processes", a.buff,
                         (size_t)a.index, QUERY_MS, query_done, q->id);
    ei_x_free(&a);
    return rc;
}

/* Ends q with an error for its caller. */
static void query_fail(struct bnode *bn, struct bquery *q, const char *atom, const char *detail) {
    struct sbx_err err = {.reason_atom = atom};
    if (detail != NULL)
        snprintf(err.detail, sizeof err.detail, "%s", detail);
    sbx_value_done_fn done = q->done;
    uint64_t key = q->key;
    query_free(bn, q);
    done(bn->sb, key, NULL, 0, &err);
}

/* code:load_binary answered: {module, _} retries the query once. */
static void load_done(uint64_t id, const struct sbx_remote_result *res) {
    struct bnode *bn;
    struct bquery *q = find_query(id, &bn);
    if (q == NULL)
        return;
    if (res->kind != SBX_REMOTE_VALUE || send_query(bn, q) != 0)
        query_fail(bn, q, "backend", "cannot load sbx_beam_helper into the node");
}

/* Loads the helper module into the node, for q. 0 or -1. */
static int load_helper(struct bnode *bn, struct bquery *q) {
    char *code = NULL;
    size_t len = 0;
    int rc;
    if (sbx_beam_priv_file(HELPER ".beam", &code, &len) != 0)
        return -1;
    ei_x_buff a;
    ei_x_new(&a);
    ei_x_encode_list_header(&a, 3);
    ei_x_encode_atom(&a, HELPER);
    ei_x_encode_string(&a, HELPER ".beam");
    ei_x_encode_binary(&a, code, (long)len);
    ei_x_encode_empty_list(&a);
    q->loaded = 1;
    rc = sbx_remote_call(sbx_core_get()->node, &bn->target, "code", "load_binary", a.buff,
                         (size_t)a.index, QUERY_MS, load_done, q->id);
    ei_x_free(&a);
    free(code);
    return rc;
}

/* 1 if res is error:undef (the helper is not loaded). */
static int is_undef(const struct sbx_remote_result *res) {
    char atom[MAXATOMLEN_UTF8];
    int idx = 0;
    return res->kind == SBX_REMOTE_EXCEPTION && strcmp(res->cls, "error") == 0 &&
           ei_decode_atom(res->term, &idx, atom) == 0 && strcmp(atom, "undef") == 0;
}

/* The helper answered: processes is the list itself; metrics is {Reds, Ts, Map}, the first
 * two kept for the next reductions-per-second figure. */
static void query_done(uint64_t id, const struct sbx_remote_result *res) {
    struct bnode *bn;
    struct bquery *q = find_query(id, &bn);
    if (q == NULL)
        return;
    if (is_undef(res) && !q->loaded) {
        if (load_helper(bn, q) != 0)
            query_fail(bn, q, "backend", "sbx_beam_helper.beam not found in priv/");
        return;
    }
    if (res->kind == SBX_REMOTE_TIMEOUT) {
        query_fail(bn, q, "timeout", NULL);
        return;
    }
    if (res->kind != SBX_REMOTE_VALUE) {
        query_fail(bn, q, "backend",
                   res->kind == SBX_REMOTE_NOCONNECTION ? "the node is not reachable"
                                                        : "the node's helper failed");
        return;
    }
    const char *term = res->term;
    size_t len = res->term_len;
    if (q->metrics) {
        int idx = 0, arity;
        long long reds, ts;
        if (ei_decode_tuple_header(term, &idx, &arity) != 0 || arity != 3 ||
            ei_decode_longlong(term, &idx, &reds) != 0 || ei_decode_longlong(term, &idx, &ts) != 0) {
            query_fail(bn, q, "backend", "unexpected answer from the node's helper");
            return;
        }
        bn->last_reds = reds;
        bn->last_ts = ts;
        term += idx;
        len -= (size_t)idx;
    }
    sbx_value_done_fn done = q->done;
    uint64_t key = q->key;
    query_free(bn, q);
    done(bn->sb, key, term, len, NULL);
}

/* Starts a query for sb; 0, or -1 with err. */
static int start_query(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done, int metrics,
                       struct sbx_err *err) {
    struct bnode *bn = sbx_beam_of(sb);
    if (bn == NULL || bn->phase != BP_RUNNING) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "the node is not running");
        return -1;
    }
    struct bquery *q = calloc(1, sizeof *q);
    if (q == NULL) {
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "out of memory");
        return -1;
    }
    q->id = next_query_id++;
    q->key = key;
    q->done = done;
    q->metrics = metrics;
    q->next = bn->queries;
    bn->queries = q;
    if (send_query(bn, q) != 0) {
        query_free(bn, q);
        err->reason_atom = "backend";
        snprintf(err->detail, sizeof err->detail, "cannot call the node");
        return -1;
    }
    return 0;
}

/* See beam.h. */
int sbx_beam_metrics_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                           struct sbx_err *err) {
    return start_query(sb, key, done, 1, err);
}

/* See beam.h. */
int sbx_beam_processes_async(struct sbx_sandbox *sb, uint64_t key, sbx_value_done_fn done,
                             struct sbx_err *err) {
    return start_query(sb, key, done, 0, err);
}
