/* Unit tests for trace/spec.h: trace_start's Spec. Every key accepted in the forms a caller
 * sends, every refusal named {Field, Why}, defaults applied, and the agent's start map
 * carrying what was decoded. Each term is checked by sbx_term_check first (the decoder's
 * precondition) and handed over as an exact-size heap copy, so that ASan reports any read
 * past the end; ASan's leak checker runs at exit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ei.h>
#include <stdlib.h>
#include <string.h>

#include "dist/term_check.h"
#include "trace/spec.h"

/* A term under construction, then its checked exact-size copy. */
struct term {
    ei_x_buff x;
    char *buf;
    int len;
};

static void t_map(struct term *t, int pairs) {
    ei_x_new(&t->x);
    ei_x_encode_map_header(&t->x, pairs);
}

/* Ends construction: validates the term and keeps an exact-size copy in t->buf. */
static void t_done(struct term *t) {
    size_t used = 0;
    assert_int_equal(sbx_term_check((const unsigned char *)t->x.buff, (size_t)t->x.index, &used), 0);
    assert_int_equal(used, (size_t)t->x.index);
    t->len = t->x.index;
    t->buf = malloc((size_t)t->len);
    assert_non_null(t->buf);
    memcpy(t->buf, t->x.buff, (size_t)t->len);
    ei_x_free(&t->x);
}

static void atoms(ei_x_buff *x, int n, const char *const *names) {
    ei_x_encode_list_header(x, n);
    for (int i = 0; i < n; i++)
        ei_x_encode_atom(x, names[i]);
    ei_x_encode_empty_list(x);
}

/* Decodes t into *s: 0 (and the whole term consumed) or -1 with *err. Frees t->buf. */
static int decode(struct term *t, struct sbx_trace_spec *s, struct sbx_badarg *err) {
    int idx = 0;
    memset(err, 0, sizeof *err);
    int rc = sbx_trace_spec_decode(t->buf, &idx, s, err);
    if (rc == 0)
        assert_int_equal(idx, t->len);
    free(t->buf);
    t->buf = NULL;
    return rc;
}

static void expect_bad(struct term *t, const char *field, const char *why) {
    struct sbx_trace_spec s;
    struct sbx_badarg err;
    assert_int_equal(decode(t, &s, &err), -1);
    assert_non_null(err.field);
    assert_string_equal(err.field, field);
    assert_string_equal(err.why, why);
}

static void test_defaults(void **state) {
    struct term t;
    struct sbx_trace_spec s;
    struct sbx_badarg err;
    char atom[MAXATOMLEN_UTF8];
    int i = 0;
    (void)state;
    t_map(&t, 0);
    t_done(&t);
    assert_int_equal(decode(&t, &s, &err), 0);
    assert_int_equal(s.flags, SBX_TF_SEND | SBX_TF_RECEIVE);
    assert_int_equal(s.max_events, 1000);
    assert_int_equal(s.duration_ms, 60000);
    assert_int_equal(s.max_msg_bytes, 4096);
    assert_int_equal(s.rate_max, 0);
    assert_int_equal(s.has_mfa, 0);
    assert_null(s.match_spec);
    assert_int_equal(ei_decode_atom(s.pids, &i, atom), 0);
    assert_string_equal(atom, "all");
}

static void test_every_key(void **state) {
    static const char *const flags[] = {"send", "receive", "call", "return", "procs",
                                        "garbage_collection", "running"};
    struct term t;
    struct sbx_trace_spec s;
    struct sbx_badarg err;
    erlang_pid pid;
    (void)state;
    memset(&pid, 0, sizeof pid);
    strcpy(pid.node, "n@h");
    pid.num = 7;
    pid.creation = 1;
    t_map(&t, 7);
    ei_x_encode_atom(&t.x, "pids");
    ei_x_encode_list_header(&t.x, 2);
    ei_x_encode_pid(&t.x, &pid);
    ei_x_encode_atom(&t.x, "my_server");
    ei_x_encode_empty_list(&t.x);
    ei_x_encode_atom(&t.x, "flags");
    atoms(&t.x, 7, flags);
    ei_x_encode_atom(&t.x, "mfa");
    ei_x_encode_tuple_header(&t.x, 4);
    ei_x_encode_atom(&t.x, "m");
    ei_x_encode_atom(&t.x, "_");
    ei_x_encode_atom(&t.x, "_");
    ei_x_encode_list_header(&t.x, 1);
    ei_x_encode_atom(&t.x, "a_clause");
    ei_x_encode_empty_list(&t.x);
    ei_x_encode_atom(&t.x, "max_events");
    ei_x_encode_long(&t.x, 100000);
    ei_x_encode_atom(&t.x, "duration_ms");
    ei_x_encode_long(&t.x, 600000);
    ei_x_encode_atom(&t.x, "max_msg_bytes");
    ei_x_encode_long(&t.x, 64);
    ei_x_encode_atom(&t.x, "rate");
    ei_x_encode_tuple_header(&t.x, 2);
    ei_x_encode_long(&t.x, 10);
    ei_x_encode_long(&t.x, 1000);
    t_done(&t);
    /* The spec's pointers point into the buffer: decode without freeing it first. */
    int idx = 0;
    memset(&err, 0, sizeof err);
    assert_int_equal(sbx_trace_spec_decode(t.buf, &idx, &s, &err), 0);
    assert_int_equal(idx, t.len);
    assert_int_equal(s.flags, 0x7f);
    assert_int_equal(s.has_mfa, 1);
    assert_string_equal(s.mod, "m");
    assert_string_equal(s.fun, "_");
    assert_int_equal(s.arity, -1);
    assert_non_null(s.match_spec);
    assert_int_equal(s.max_events, 100000);
    assert_int_equal(s.duration_ms, 600000);
    assert_int_equal(s.max_msg_bytes, 64);
    assert_int_equal(s.rate_max, 10);
    assert_int_equal(s.rate_per_ms, 1000);

    /* The agent's map: vsn, ref, sink and every field (pids and match_spec as sent). */
    ei_x_buff ref, sink, out;
    ei_x_new(&ref);
    ei_x_new(&sink);
    ei_x_new(&out);
    ei_x_encode_atom(&ref, "a_ref");
    ei_x_encode_pid(&sink, &pid);
    sbx_trace_spec_encode(&s, ref.buff, (size_t)ref.index, sink.buff, (size_t)sink.index, &out);
    int j = 0, pairs, n;
    char key[MAXATOMLEN_UTF8];
    long v;
    assert_int_equal(ei_decode_map_header(out.buff, &j, &pairs), 0);
    assert_int_equal(pairs, 11);
    for (int k = 0; k < pairs; k++) {
        assert_int_equal(ei_decode_atom(out.buff, &j, key), 0);
        int at = j;
        if (strcmp(key, "vsn") == 0) {
            assert_int_equal(ei_decode_long(out.buff, &j, &v), 0);
            assert_int_equal(v, SBX_TRACE_AGENT_VSN);
        } else if (strcmp(key, "flags") == 0) {
            assert_int_equal(ei_decode_list_header(out.buff, &j, &n), 0);
            assert_int_equal(n, 7);
            j = at;
            assert_int_equal(ei_skip_term(out.buff, &j), 0);
        } else if (strcmp(key, "pids") == 0) {
            assert_int_equal(ei_skip_term(out.buff, &j), 0);
            assert_int_equal((size_t)(j - at), s.pids_len);
            assert_memory_equal(out.buff + at, s.pids, s.pids_len);
        } else {
            assert_int_equal(ei_skip_term(out.buff, &j), 0);
        }
    }
    assert_int_equal(j, out.index);
    ei_x_free(&ref);
    ei_x_free(&sink);
    ei_x_free(&out);
    free(t.buf);
}

/* One-pair spec #{key => value} where value is built by fn. */
static void one(struct term *t, const char *key, void (*fn)(ei_x_buff *)) {
    t_map(t, 1);
    ei_x_encode_atom(&t->x, key);
    fn(&t->x);
    t_done(t);
}

static void v_zero(ei_x_buff *x) { ei_x_encode_long(x, 0); }
static void v_big(ei_x_buff *x) { ei_x_encode_ulonglong(x, 1ULL << 63); }
static void v_atom(ei_x_buff *x) { ei_x_encode_atom(x, "x"); }
static void v_empty(ei_x_buff *x) { ei_x_encode_empty_list(x); }
static void v_100001(ei_x_buff *x) { ei_x_encode_long(x, 100001); }
static void v_600001(ei_x_buff *x) { ei_x_encode_long(x, 600001); }
static void v_63(ei_x_buff *x) { ei_x_encode_long(x, 63); }
static void v_bad_flag(ei_x_buff *x) {
    static const char *const f[] = {"send", "bogus"};
    atoms(x, 2, f);
}
static void v_improper(ei_x_buff *x) {
    ei_x_encode_list_header(x, 1);
    ei_x_encode_atom(x, "send");
    ei_x_encode_atom(x, "tail");
}
static void v_int_list(ei_x_buff *x) {
    ei_x_encode_list_header(x, 1);
    ei_x_encode_long(x, 1);
    ei_x_encode_empty_list(x);
}
static void v_undefined_list(ei_x_buff *x) {
    ei_x_encode_list_header(x, 1);
    ei_x_encode_atom(x, "undefined");
    ei_x_encode_empty_list(x);
}
static void v_mfa_any_module(ei_x_buff *x) {
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, "_");
    ei_x_encode_atom(x, "f");
    ei_x_encode_long(x, 1);
}
static void v_mfa_arity_256(ei_x_buff *x) {
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, "m");
    ei_x_encode_atom(x, "f");
    ei_x_encode_long(x, 256);
}
static void v_rate_zero(ei_x_buff *x) {
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_long(x, 0);
    ei_x_encode_long(x, 10);
}
static void v_call(ei_x_buff *x) {
    static const char *const f[] = {"call"};
    atoms(x, 1, f);
}
static void v_mfa_ok(ei_x_buff *x) {
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, "m");
    ei_x_encode_atom(x, "f");
    ei_x_encode_long(x, 1);
}

static void test_refusals(void **state) {
    struct term t;
    (void)state;
    one(&t, "max_events", v_zero), expect_bad(&t, "max_events", "out_of_range");
    one(&t, "max_events", v_100001), expect_bad(&t, "max_events", "out_of_range");
    one(&t, "max_events", v_big), expect_bad(&t, "max_events", "out_of_range");
    one(&t, "max_events", v_atom), expect_bad(&t, "max_events", "not_an_integer");
    one(&t, "duration_ms", v_600001), expect_bad(&t, "duration_ms", "out_of_range");
    one(&t, "max_msg_bytes", v_63), expect_bad(&t, "max_msg_bytes", "out_of_range");
    one(&t, "flags", v_bad_flag), expect_bad(&t, "flags", "invalid");
    one(&t, "flags", v_empty), expect_bad(&t, "flags", "invalid");
    one(&t, "flags", v_improper), expect_bad(&t, "flags", "invalid");
    one(&t, "flags", v_call), expect_bad(&t, "mfa", "missing");
    one(&t, "pids", v_atom), expect_bad(&t, "pids", "invalid");
    one(&t, "pids", v_empty), expect_bad(&t, "pids", "invalid");
    one(&t, "pids", v_int_list), expect_bad(&t, "pids", "invalid");
    one(&t, "pids", v_undefined_list), expect_bad(&t, "pids", "invalid");
    one(&t, "mfa", v_mfa_any_module), expect_bad(&t, "mfa", "invalid");
    one(&t, "mfa", v_mfa_arity_256), expect_bad(&t, "mfa", "invalid");
    one(&t, "mfa", v_mfa_ok), expect_bad(&t, "mfa", "needs_call_flag");
    one(&t, "match_spec", v_empty), expect_bad(&t, "match_spec", "needs_mfa");
    one(&t, "match_spec", v_atom), expect_bad(&t, "match_spec", "invalid");
    one(&t, "rate", v_rate_zero), expect_bad(&t, "rate", "invalid");
    one(&t, "rate", v_atom), expect_bad(&t, "rate", "invalid");
}

static void test_not_a_map_and_unknown_keys(void **state) {
    struct term t;
    struct sbx_trace_spec s;
    struct sbx_badarg err;
    (void)state;
    ei_x_new(&t.x);
    ei_x_encode_list_header(&t.x, 1);
    ei_x_encode_atom(&t.x, "x");
    ei_x_encode_empty_list(&t.x);
    t_done(&t);
    expect_bad(&t, "spec", "not_a_map");

    /* An unknown key is named as sent (here a binary). */
    t_map(&t, 1);
    ei_x_encode_binary(&t.x, "pids", 4);
    ei_x_encode_atom(&t.x, "all");
    t_done(&t);
    char *copy = t.buf;
    int idx = 0;
    memset(&err, 0, sizeof err);
    assert_int_equal(sbx_trace_spec_decode(copy, &idx, &s, &err), -1);
    assert_non_null(err.field_term);
    assert_string_equal(err.why, "unknown_key");
    int k = 0;
    assert_int_equal(ei_skip_term(err.field_term, &k), 0);
    assert_int_equal((size_t)k, err.field_term_len);
    free(copy);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_not_a_map_and_unknown_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
