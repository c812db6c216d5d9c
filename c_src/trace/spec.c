/* trace_start's Spec: decoding, validation, and the agent's start map. */
#include "trace/spec.h"

#include <string.h>


static const struct {
    const char *name;
    unsigned bit;
} flag_names[] = {
    {"send", SBX_TF_SEND},   {"receive", SBX_TF_RECEIVE},         {"call", SBX_TF_CALL},
    {"return", SBX_TF_RETURN}, {"procs", SBX_TF_PROCS}, {"garbage_collection", SBX_TF_GC},
    {"running", SBX_TF_RUNNING},
};
#define NFLAGS (sizeof flag_names / sizeof flag_names[0])

/* An atom (any encoding) at buf+*idx into out as UTF-8; 0 or -1 (not an atom). */
static int decode_atom(const char *buf, int *idx, char out[MAXATOMLEN_UTF8]) {
    return ei_decode_atom_as(buf, idx, out, MAXATOMLEN_UTF8, ERLANG_UTF8, NULL, NULL);
}

/* Sets *err to {field, why}; returns -1 for the caller to pass on. */
static int bad(struct sbx_badarg *err, const char *field, const char *why) {
    err->field = field;
    err->why = why;
    err->field_term = NULL;
    return -1;
}

/* An integer in [lo, hi] at buf+*idx into *out; else {field, not_an_integer |
 * out_of_range}. Big integers are out of range. */
static int int_in(const char *buf, int *idx, long lo, long hi, long *out, const char *field,
                  struct sbx_badarg *err) {
    int type, size;
    long v;
    if (ei_get_type(buf, idx, &type, &size) != 0)
        return bad(err, field, "not_an_integer");
    if (type == ERL_SMALL_BIG_EXT || type == ERL_LARGE_BIG_EXT)
        return bad(err, field, ei_skip_term(buf, idx) == 0 ? "out_of_range" : "not_an_integer");
    if ((type != ERL_SMALL_INTEGER_EXT && type != ERL_INTEGER_EXT) || ei_decode_long(buf, idx, &v) != 0)
        return bad(err, field, "not_an_integer");
    if (v < lo || v > hi)
        return bad(err, field, "out_of_range");
    *out = v;
    return 0;
}

/* pids: all | new | existing, or a proper list of 1..SBX_TRACE_PIDS_MAX pids or atoms
 * (registered names). Keeps the term's span. */
static int decode_pids(const char *buf, int *idx, struct sbx_trace_spec *out, struct sbx_badarg *err) {
    int type, size, start = *idx;
    char atom[MAXATOMLEN_UTF8];
    if (ei_get_type(buf, idx, &type, &size) != 0)
        return bad(err, "pids", "invalid");
    if (type == ERL_ATOM_EXT || type == ERL_SMALL_ATOM_EXT || type == ERL_ATOM_UTF8_EXT ||
        type == ERL_SMALL_ATOM_UTF8_EXT) {
        if (decode_atom(buf, idx, atom) != 0 ||
            (strcmp(atom, "all") != 0 && strcmp(atom, "new") != 0 && strcmp(atom, "existing") != 0))
            return bad(err, "pids", "invalid");
    } else {
        int n;
        if (ei_decode_list_header(buf, idx, &n) != 0 || n < 1 || n > SBX_TRACE_PIDS_MAX)
            return bad(err, "pids", "invalid");
        for (int i = 0; i < n; i++) {
            erlang_pid p;
            int at = *idx;
            if (ei_decode_pid(buf, idx, &p) == 0)
                continue;
            *idx = at;
            if (decode_atom(buf, idx, atom) != 0 || strcmp(atom, "undefined") == 0)
                return bad(err, "pids", "invalid");
        }
        if (ei_decode_list_header(buf, idx, &n) != 0 || n != 0) /* proper tail */
            return bad(err, "pids", "invalid");
    }
    out->pids = buf + start;
    out->pids_len = (size_t)(*idx - start);
    return 0;
}

/* flags: a non-empty proper list of the names in flag_names. */
static int decode_flags(const char *buf, int *idx, unsigned *out, struct sbx_badarg *err) {
    int n;
    char atom[MAXATOMLEN_UTF8];
    if (ei_decode_list_header(buf, idx, &n) != 0 || n < 1 || n > 32)
        return bad(err, "flags", "invalid");
    *out = 0;
    for (int i = 0; i < n; i++) {
        size_t k;
        if (decode_atom(buf, idx, atom) != 0)
            return bad(err, "flags", "invalid");
        for (k = 0; k < NFLAGS && strcmp(atom, flag_names[k].name) != 0; k++)
            ;
        if (k == NFLAGS)
            return bad(err, "flags", "invalid");
        *out |= flag_names[k].bit;
    }
    if (ei_decode_list_header(buf, idx, &n) != 0 || n != 0)
        return bad(err, "flags", "invalid");
    return 0;
}

/* A match spec: any proper list (its clauses are checked by erlang:trace_pattern on the
 * traced node, which refuses a bad one). */
static int decode_ms(const char *buf, int *idx, struct sbx_trace_spec *out, struct sbx_badarg *err) {
    int type, size, start = *idx;
    if (ei_get_type(buf, idx, &type, &size) != 0 || (type != ERL_LIST_EXT && type != ERL_NIL_EXT) ||
        ei_skip_term(buf, idx) != 0)
        return bad(err, "match_spec", "invalid");
    out->match_spec = buf + start;
    out->match_spec_len = (size_t)(*idx - start);
    return 0;
}

/* mfa: {M, F, Arity} or {M, F, Arity, MatchSpec}; M an atom other than '_', F an atom,
 * Arity 0..255 or '_'. */
static int decode_mfa(const char *buf, int *idx, struct sbx_trace_spec *out, struct sbx_badarg *err) {
    int arity, type, size;
    long a;
    char atom[MAXATOMLEN_UTF8];
    if (ei_decode_tuple_header(buf, idx, &arity) != 0 || (arity != 3 && arity != 4) ||
        decode_atom(buf, idx, out->mod) != 0 || strcmp(out->mod, "_") == 0 ||
        decode_atom(buf, idx, out->fun) != 0 || ei_get_type(buf, idx, &type, &size) != 0)
        return bad(err, "mfa", "invalid");
    if (type == ERL_SMALL_INTEGER_EXT || type == ERL_INTEGER_EXT) {
        if (ei_decode_long(buf, idx, &a) != 0 || a < 0 || a > 255)
            return bad(err, "mfa", "invalid");
        out->arity = (int)a;
    } else if (decode_atom(buf, idx, atom) == 0 && strcmp(atom, "_") == 0) {
        out->arity = -1;
    } else {
        return bad(err, "mfa", "invalid");
    }
    if (arity == 4 && decode_ms(buf, idx, out, err) != 0)
        return bad(err, "mfa", "invalid");
    out->has_mfa = 1;
    return 0;
}

/* rate: {Max, PerMs} with Max 1..10,000,000 and PerMs 1..3,600,000. */
static int decode_rate(const char *buf, int *idx, struct sbx_trace_spec *out, struct sbx_badarg *err) {
    int arity;
    struct sbx_badarg ignored;
    if (ei_decode_tuple_header(buf, idx, &arity) != 0 || arity != 2 ||
        int_in(buf, idx, 1, 10000000, &out->rate_max, "rate", &ignored) != 0 ||
        int_in(buf, idx, 1, 3600000, &out->rate_per_ms, "rate", &ignored) != 0)
        return bad(err, "rate", "invalid");
    return 0;
}

/* See spec.h. Each key at most once (a map cannot repeat one). */
int sbx_trace_spec_decode(const char *buf, int *idx, struct sbx_trace_spec *out,
                          struct sbx_badarg *err) {
    static const char all_atom[] = {ERL_SMALL_ATOM_UTF8_EXT, 3, 'a', 'l', 'l'};
    int pairs;
    char key[MAXATOMLEN_UTF8];

    memset(out, 0, sizeof *out);
    out->pids = all_atom;
    out->pids_len = sizeof all_atom;
    out->flags = SBX_TF_SEND | SBX_TF_RECEIVE;
    out->max_events = SBX_TRACE_MAX_EVENTS_DEFAULT;
    out->duration_ms = SBX_TRACE_DURATION_DEFAULT;
    out->max_msg_bytes = SBX_TRACE_MSG_BYTES_DEFAULT;
    if (ei_decode_map_header(buf, idx, &pairs) != 0)
        return bad(err, "spec", "not_a_map");
    for (int i = 0; i < pairs; i++) {
        int kstart = *idx, rc;
        if (decode_atom(buf, idx, key) != 0) {
            *idx = kstart;
            if (ei_skip_term(buf, idx) != 0)
                return bad(err, "spec", "bad_key");
            err->field_term = buf + kstart;
            err->field_term_len = (size_t)(*idx - kstart);
            err->why = "unknown_key";
            return -1;
        }
        if (strcmp(key, "pids") == 0)
            rc = decode_pids(buf, idx, out, err);
        else if (strcmp(key, "flags") == 0)
            rc = decode_flags(buf, idx, &out->flags, err);
        else if (strcmp(key, "mfa") == 0)
            rc = decode_mfa(buf, idx, out, err);
        else if (strcmp(key, "match_spec") == 0)
            rc = decode_ms(buf, idx, out, err);
        else if (strcmp(key, "max_events") == 0)
            rc = int_in(buf, idx, 1, SBX_TRACE_MAX_EVENTS_MAX, &out->max_events, "max_events", err);
        else if (strcmp(key, "duration_ms") == 0)
            rc = int_in(buf, idx, 1, SBX_TRACE_DURATION_MAX, &out->duration_ms, "duration_ms", err);
        else if (strcmp(key, "max_msg_bytes") == 0)
            rc = int_in(buf, idx, SBX_TRACE_MSG_BYTES_MIN, SBX_TRACE_MSG_BYTES_MAX,
                        &out->max_msg_bytes, "max_msg_bytes", err);
        else if (strcmp(key, "rate") == 0)
            rc = decode_rate(buf, idx, out, err);
        else {
            *idx = kstart;
            ei_skip_term(buf, idx);
            err->field_term = buf + kstart;
            err->field_term_len = (size_t)(*idx - kstart);
            err->why = "unknown_key";
            return -1;
        }
        if (rc != 0)
            return -1;
    }
    if ((out->flags & (SBX_TF_CALL | SBX_TF_RETURN)) && !out->has_mfa)
        return bad(err, "mfa", "missing");
    if (out->has_mfa && !(out->flags & (SBX_TF_CALL | SBX_TF_RETURN)))
        return bad(err, "mfa", "needs_call_flag");
    if (out->match_spec != NULL && !out->has_mfa)
        return bad(err, "match_spec", "needs_mfa");
    return 0;
}

/* See spec.h. Encodes a map of 8 to 11 pairs. */
void sbx_trace_spec_encode(const struct sbx_trace_spec *spec, const char *ref, size_t ref_len,
                           const char *sink, size_t sink_len, ei_x_buff *x) {
    int pairs = 8 + (spec->has_mfa ? 1 : 0) + (spec->match_spec != NULL ? 1 : 0) +
                (spec->rate_max > 0 ? 1 : 0);
    int nflags = 0;
    for (size_t k = 0; k < NFLAGS; k++)
        nflags += (spec->flags & flag_names[k].bit) != 0;
    ei_x_encode_map_header(x, pairs);
    ei_x_encode_atom(x, "vsn");
    ei_x_encode_long(x, SBX_TRACE_AGENT_VSN);
    ei_x_encode_atom(x, "ref");
    ei_x_append_buf(x, ref, (int)ref_len);
    ei_x_encode_atom(x, "sink");
    ei_x_append_buf(x, sink, (int)sink_len);
    ei_x_encode_atom(x, "pids");
    ei_x_append_buf(x, spec->pids, (int)spec->pids_len);
    ei_x_encode_atom(x, "flags");
    ei_x_encode_list_header(x, nflags);
    for (size_t k = 0; k < NFLAGS; k++)
        if (spec->flags & flag_names[k].bit)
            ei_x_encode_atom(x, flag_names[k].name);
    ei_x_encode_empty_list(x);
    if (spec->has_mfa) {
        ei_x_encode_atom(x, "mfa");
        ei_x_encode_tuple_header(x, 3);
        ei_x_encode_atom(x, spec->mod);
        ei_x_encode_atom(x, spec->fun);
        if (spec->arity < 0)
            ei_x_encode_atom(x, "_");
        else
            ei_x_encode_long(x, spec->arity);
    }
    if (spec->match_spec != NULL) {
        ei_x_encode_atom(x, "match_spec");
        ei_x_append_buf(x, spec->match_spec, (int)spec->match_spec_len);
    }
    if (spec->rate_max > 0) {
        ei_x_encode_atom(x, "rate");
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_long(x, spec->rate_max);
        ei_x_encode_long(x, spec->rate_per_ms);
    }
    ei_x_encode_atom(x, "max_events");
    ei_x_encode_long(x, spec->max_events);
    ei_x_encode_atom(x, "duration_ms");
    ei_x_encode_long(x, spec->duration_ms);
    ei_x_encode_atom(x, "max_msg_bytes");
    ei_x_encode_long(x, spec->max_msg_bytes);
}
