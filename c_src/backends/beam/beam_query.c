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
};

static uint64_t next_query_id = 1;

static void query_done(uint64_t id, const struct sbx_remote_result *res);

/* A call to the helper module under way (sbx_beam_helper_call); owned by `helper_calls`. */
struct hcall {
    struct hcall *next;
    uint64_t id; /* the remote calls' key */
    struct sbx_beam_target target;
    char f[32];
    char *args;
    size_t args_len;
    int timeout_ms;
    sbx_remote_done_fn done;
    uint64_t key;
    int loaded; /* the helper was loaded for this call already */
};

static struct hcall *helper_calls;
static uint64_t next_hcall_id = 1;

static void hcall_done(uint64_t id, const struct sbx_remote_result *res);
static void hload_done(uint64_t id, const struct sbx_remote_result *res);

/* The helper call with that id, or NULL (cancelled or finished). */
static struct hcall *hcall_find(uint64_t id) {
    for (struct hcall *h = helper_calls; h != NULL; h = h->next)
        if (h->id == id)
            return h;
    return NULL;
}

/* Unlinks and frees h (the target's cookie is wiped). */
static void hcall_free(struct hcall *h) {
    for (struct hcall **pp = &helper_calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    free(h->args);
    memset(&h->target, 0, sizeof h->target);
    free(h);
}

/* Ends h: the caller is told res, then h is freed (it is unlinked first, so the caller may
 * start or cancel helper calls). */
static void hcall_finish(struct hcall *h, const struct sbx_remote_result *res) {
    for (struct hcall **pp = &helper_calls; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == h) {
            *pp = h->next;
            break;
        }
    }
    h->next = NULL;
    h->done(h->key, res);
    free(h->args);
    memset(&h->target, 0, sizeof h->target);
    free(h);
}

/* Sends sbx_beam_helper:F(Args) for h. 0 or -1. */
static int hcall_send(struct hcall *h) {
    return sbx_remote_call(sbx_core_get()->node, &h->target, HELPER, h->f, h->args, h->args_len,
                           h->timeout_ms, hcall_done, h->id);
}

/* 1 if res is error:undef (the helper is not loaded). */
static int is_undef(const struct sbx_remote_result *res) {
    char atom[MAXATOMLEN_UTF8];
    int idx = 0;
    return res->kind == SBX_REMOTE_EXCEPTION && strcmp(res->cls, "error") == 0 &&
           ei_decode_atom(res->term, &idx, atom) == 0 && strcmp(atom, "undef") == 0;
}

/* Loads the helper module into h's node (code:load_binary). 0 or -1. */
static int hcall_load(struct hcall *h) {
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
    h->loaded = 1;
    rc = sbx_remote_call(sbx_core_get()->node, &h->target, "code", "load_binary", a.buff,
                         (size_t)a.index, h->timeout_ms, hload_done, h->id);
    ei_x_free(&a);
    free(code);
    return rc;
}

/* The helper answered: error:undef the first time loads it and calls again; anything else
 * goes to the caller. */
static void hcall_done(uint64_t id, const struct sbx_remote_result *res) {
    struct hcall *h = hcall_find(id);
    if (h == NULL)
        return;
    if (is_undef(res) && !h->loaded && hcall_load(h) == 0)
        return;
    hcall_finish(h, res);
}

/* code:load_binary answered: call the helper again, or report the failure. */
static void hload_done(uint64_t id, const struct sbx_remote_result *res) {
    struct hcall *h = hcall_find(id);
    if (h == NULL)
        return;
    if (res->kind == SBX_REMOTE_VALUE && hcall_send(h) == 0)
        return;
    hcall_finish(h, res);
}

/* See beam.h. */
int sbx_beam_helper_call(const struct sbx_beam_target *t, const char *f, const char *args,
                         size_t args_len, int timeout_ms, sbx_remote_done_fn done, uint64_t key) {
    struct hcall *h = calloc(1, sizeof *h);
    if (h == NULL || strlen(f) >= sizeof h->f || (h->args = malloc(args_len)) == NULL) {
        free(h);
        return -1;
    }
    h->id = next_hcall_id++;
    h->target = *t;
    snprintf(h->f, sizeof h->f, "%s", f);
    memcpy(h->args, args, args_len);
    h->args_len = args_len;
    h->timeout_ms = timeout_ms;
    h->done = done;
    h->key = key;
    h->next = helper_calls;
    helper_calls = h;
    if (hcall_send(h) != 0) {
        hcall_free(h);
        return -1;
    }
    return 0;
}

/* See beam.h. */
size_t sbx_beam_helper_cancel(sbx_remote_done_fn done, uint64_t key) {
    struct sbx_node *node = sbx_core_get()->node;
    size_t n = 0;
    struct hcall **pp = &helper_calls;
    while (*pp != NULL) {
        struct hcall *h = *pp;
        if (h->done == done && h->key == key) {
            sbx_remote_cancel(node, hcall_done, h->id);
            sbx_remote_cancel(node, hload_done, h->id);
            *pp = h->next;
            free(h->args);
            memset(&h->target, 0, sizeof h->target);
            free(h);
            n++;
        } else {
            pp = &h->next;
        }
    }
    return n;
}

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
    struct bquery **pp = &bn->queries;
    while (*pp != NULL) {
        struct bquery *q = *pp;
        if (all || q->key == key) {
            sbx_beam_helper_cancel(query_done, q->id);
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
    }
    ei_x_encode_empty_list(&a);
    rc = sbx_beam_helper_call(&bn->target, q->metrics ? "metrics" : "processes", a.buff,
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

/* The helper answered: processes is the list itself; metrics is {Reds, Ts, Map}, the first
 * two kept for the next reductions-per-second figure. */
static void query_done(uint64_t id, const struct sbx_remote_result *res) {
    struct bnode *bn;
    struct bquery *q = find_query(id, &bn);
    if (q == NULL)
        return;
    if (res->kind == SBX_REMOTE_TIMEOUT) {
        query_fail(bn, q, "timeout", NULL);
        return;
    }
    if (res->kind != SBX_REMOTE_VALUE) {
        query_fail(bn, q, "backend",
                   res->kind == SBX_REMOTE_NOCONNECTION ? "the node is not reachable"
                   : is_undef(res) ? "cannot load sbx_beam_helper into the node"
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
