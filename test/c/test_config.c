/* Unit tests for core/config.h: ids, types, commands, create configs (every key, every
 * type), health checks, exec options, list filters, log options, topics and relative
 * paths. Each decoder must accept what an Elixir or Erlang caller naturally sends, refuse
 * everything else with {badarg, Field, Why}, leave *out zeroed and *idx untouched on
 * failure, advance *idx past exactly the term on success, and leak nothing (ASan's leak
 * checker runs at exit).
 *
 * Terms are written in a small Erlang-like notation (see "term text" below) and encoded
 * with ei_x_*; each is checked by sbx_term_check first (the decoders' precondition) and
 * handed over as an exact-size heap copy, so that ASan reports any read past the end. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <ei.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/beam/beam_config.h"
#include "backends/docker/docker_config.h"
#include "backends/process/process_config.h"
#include "backends/vm/vm_config.h"
#include "core/config.h"
#include "dist/term_check.h"

#define DAY_MS 86400000LL
#define TTL_MAX (3653LL * DAY_MS)

/* ---- term text ---------------------------------------------------------------------
 *   #{K => V, ...}   map              [A, B | T]  list ([X*N]: X repeated N times)
 *   {A, B}           tuple            <<"..">>    binary (<<"ab"*N>>: repeated)
 *   ".."             charlist: UTF-8 text as code points (STRING_EXT when all <= 255)
 *   abc, 'Abc'       atom (UTF-8)     @latin1'..' atom as SMALL_ATOM_EXT (latin-1)
 *   @atom_d'..' ATOM_EXT (latin-1, 16-bit length)   @atom_v'..' ATOM_UTF8_EXT
 *   12, -3, 1.5      numbers; integers beyond 64 bits become bignums
 *   @pid @oldpid     a pid (NEW_PID_EXT / PID_EXT)     @ref  a reference
 *   @bits            a 3-bit bitstring                   @oldfloat  1.5 as FLOAT_EXT
 * Escapes in quotes: \0 \n \\ \" \' \xHH. */

struct parser {
    const char *s;
    const char *text;
};

static void p_ws(struct parser *p) {
    while (isspace((unsigned char)*p->s))
        p->s++;
}

static void p_expect(struct parser *p, const char *tok) {
    p_ws(p);
    size_t n = strlen(tok);
    if (strncmp(p->s, tok, n) != 0)
        fail_msg("term text: expected '%s' at \"%.20s\" in %s", tok, p->s, p->text);
    p->s += n;
}

static int p_accept(struct parser *p, const char *tok) {
    p_ws(p);
    size_t n = strlen(tok);
    if (strncmp(p->s, tok, n) != 0)
        return 0;
    p->s += n;
    return 1;
}

/* An optional "*N" repeat count (1 when absent). */
static long p_repeat(struct parser *p) {
    if (!p_accept(p, "*"))
        return 1;
    char *end;
    long n = strtol(p->s, &end, 10);
    assert_true(end != p->s && n >= 1);
    p->s = end;
    return n;
}

/* A quoted literal after its opening quote q, escapes resolved, then its *N repeat.
 * Returns a malloc'd buffer of *n bytes. */
static char *p_quoted(struct parser *p, char q, size_t *n) {
    size_t cap = 64, len = 0;
    char *b = malloc(cap);
    assert_non_null(b);
    while (*p->s != q) {
        if (*p->s == '\0')
            fail_msg("term text: unterminated quote in %s", p->text);
        char c = *p->s++;
        if (c == '\\') {
            c = *p->s++;
            if (c == '0')
                c = '\0';
            else if (c == 'n')
                c = '\n';
            else if (c == 'x') {
                char hex[3] = {p->s[0], p->s[1], 0};
                c = (char)strtol(hex, NULL, 16);
                p->s += 2;
            }
        }
        if (len + 1 > cap)
            assert_non_null(b = realloc(b, cap *= 2));
        b[len++] = c;
    }
    p->s++;
    long r = p_repeat(p);
    char *out = malloc(len * (size_t)r + 1);
    assert_non_null(out);
    for (long k = 0; k < r; k++)
        memcpy(out + (size_t)k * len, b, len);
    free(b);
    *n = len * (size_t)r;
    return out;
}

/* Encodes a UTF-8 text as a charlist of its code points. */
static void put_charlist(ei_x_buff *x, const unsigned char *s, size_t n) {
    long *cps = malloc((n + 1) * sizeof *cps);
    assert_non_null(cps);
    size_t m = 0;
    int all_small = 1;
    for (size_t k = 0; k < n;) {
        unsigned c = s[k];
        long cp;
        int more = c < 0x80 ? 0 : c < 0xE0 ? 1 : c < 0xF0 ? 2 : 3;
        cp = more == 0 ? c : more == 1 ? (c & 0x1F) : more == 2 ? (c & 0x0F) : (c & 0x07);
        for (int j = 1; j <= more; j++)
            cp = cp << 6 | (s[k + j] & 0x3F);
        k += 1 + (size_t)more;
        cps[m++] = cp;
        if (cp > 255)
            all_small = 0;
    }
    if (all_small && m <= 65535) {
        char *bytes = malloc(m + 1);
        assert_non_null(bytes);
        for (size_t k = 0; k < m; k++)
            bytes[k] = (char)cps[k];
        assert_int_equal(ei_x_encode_string_len(x, bytes, (int)m), 0);
        free(bytes);
    } else {
        assert_int_equal(ei_x_encode_list_header(x, (long)m), 0);
        for (size_t k = 0; k < m; k++)
            assert_int_equal(ei_x_encode_long(x, cps[k]), 0);
        assert_int_equal(ei_x_encode_empty_list(x), 0);
    }
    free(cps);
}

/* An integer of any size, as decimal digits: a SMALL_BIG_EXT beyond 64 bits. */
static void put_integer(ei_x_buff *x, const char *digits, size_t nd, int neg) {
    char tmp[64];
    assert_true(nd < sizeof tmp);
    memcpy(tmp, digits, nd);
    tmp[nd] = '\0';
    errno = 0;
    long long v = strtoll(tmp, NULL, 10);
    if (errno == 0) {
        assert_int_equal(ei_x_encode_longlong(x, neg ? -v : v), 0);
        return;
    }
    unsigned char d[64], out[40];
    size_t no = 0;
    for (size_t k = 0; k < nd; k++)
        d[k] = (unsigned char)(digits[k] - '0');
    for (;;) {
        int nonzero = 0;
        unsigned rem = 0;
        for (size_t k = 0; k < nd; k++) {
            unsigned cur = rem * 10 + d[k];
            d[k] = (unsigned char)(cur / 256);
            rem = cur % 256;
            nonzero |= d[k] != 0;
        }
        out[no++] = (unsigned char)rem;
        if (!nonzero)
            break;
    }
    unsigned char hdr[3] = {ERL_SMALL_BIG_EXT, (unsigned char)no, (unsigned char)(neg ? 1 : 0)};
    assert_int_equal(ei_x_append_buf(x, (const char *)hdr, 3), 0);
    assert_int_equal(ei_x_append_buf(x, (const char *)out, (int)no), 0);
}

static void p_term(struct parser *p, ei_x_buff *x);

/* Elements up to close, into kids; pairs: map "K => V" entries. Returns the count. */
static long p_elements(struct parser *p, const char *close, int pairs, ei_x_buff *kids,
                       ei_x_buff *tail, int *has_tail) {
    long n = 0;
    if (p_accept(p, close))
        return 0;
    for (;;) {
        int start = kids->index;
        p_term(p, kids);
        if (pairs) {
            p_expect(p, "=>");
            p_term(p, kids);
        }
        long r = p_repeat(p);
        if (r > 1) {
            int len = kids->index - start;
            char *copy = malloc((size_t)len);
            assert_non_null(copy);
            memcpy(copy, kids->buff + start, (size_t)len);
            for (long k = 1; k < r; k++)
                assert_int_equal(ei_x_append_buf(kids, copy, len), 0);
            free(copy);
        }
        n += r;
        if (p_accept(p, ","))
            continue;
        if (tail != NULL && p_accept(p, "|")) {
            p_term(p, tail);
            *has_tail = 1;
        }
        p_expect(p, close);
        return n;
    }
}

static void p_term(struct parser *p, ei_x_buff *x) {
    p_ws(p);
    const char *s = p->s;
    size_t n;
    char *lit;
    if (strncmp(s, "#{", 2) == 0) {
        ei_x_buff kids;
        ei_x_new(&kids);
        p->s += 2;
        long c = p_elements(p, "}", 1, &kids, NULL, NULL);
        assert_int_equal(ei_x_encode_map_header(x, c), 0);
        assert_int_equal(ei_x_append_buf(x, kids.buff, kids.index), 0);
        ei_x_free(&kids);
    } else if (*s == '[') {
        ei_x_buff kids, tail;
        int has_tail = 0;
        ei_x_new(&kids);
        ei_x_new(&tail);
        p->s++;
        long c = p_elements(p, "]", 0, &kids, &tail, &has_tail);
        if (c > 0) {
            assert_int_equal(ei_x_encode_list_header(x, c), 0);
            assert_int_equal(ei_x_append_buf(x, kids.buff, kids.index), 0);
        }
        if (has_tail)
            assert_int_equal(ei_x_append_buf(x, tail.buff, tail.index), 0);
        else
            assert_int_equal(ei_x_encode_empty_list(x), 0);
        ei_x_free(&kids);
        ei_x_free(&tail);
    } else if (*s == '{') {
        ei_x_buff kids;
        ei_x_new(&kids);
        p->s++;
        long c = p_elements(p, "}", 0, &kids, NULL, NULL);
        assert_int_equal(ei_x_encode_tuple_header(x, c), 0);
        assert_int_equal(ei_x_append_buf(x, kids.buff, kids.index), 0);
        ei_x_free(&kids);
    } else if (strncmp(s, "<<", 2) == 0) {
        p->s += 2;
        if (p_accept(p, ">>")) {
            assert_int_equal(ei_x_encode_binary(x, "", 0), 0);
            return;
        }
        p_expect(p, "\"");
        lit = p_quoted(p, '"', &n);
        p_expect(p, ">>");
        assert_int_equal(ei_x_encode_binary(x, lit, (int)n), 0);
        free(lit);
    } else if (*s == '"') {
        p->s++;
        lit = p_quoted(p, '"', &n);
        put_charlist(x, (const unsigned char *)lit, n);
        free(lit);
    } else if (*s == '\'') {
        p->s++;
        lit = p_quoted(p, '\'', &n);
        assert_int_equal(ei_x_encode_atom_len_as(x, lit, (int)n, ERLANG_UTF8, ERLANG_UTF8), 0);
        free(lit);
    } else if (strncmp(s, "@latin1'", 8) == 0 || strncmp(s, "@atom_d'", 8) == 0 ||
               strncmp(s, "@atom_v'", 8) == 0) {
        /* ei writes SMALL_ATOM_UTF8_EXT whenever it can: these tags are made by hand */
        char tag = s[1] == 'l' ? ERL_SMALL_ATOM_EXT : s[6] == 'd' ? ERL_ATOM_EXT
                                                                  : ERL_ATOM_UTF8_EXT;
        p->s += 8;
        lit = p_quoted(p, '\'', &n);
        assert_true(n <= 255);
        char hdr[3] = {tag, 0, (char)n};
        if (tag == ERL_SMALL_ATOM_EXT) {
            hdr[1] = (char)n;
            assert_int_equal(ei_x_append_buf(x, hdr, 2), 0);
        } else {
            assert_int_equal(ei_x_append_buf(x, hdr, 3), 0);
        }
        assert_int_equal(ei_x_append_buf(x, lit, (int)n), 0);
        free(lit);
    } else if (strncmp(s, "@pid", 4) == 0) {
        erlang_pid pid;
        memset(&pid, 0, sizeof pid);
        snprintf(pid.node, sizeof pid.node, "caller@host");
        pid.num = 77;
        pid.serial = 3;
        pid.creation = 4242;
        p->s += 4;
        assert_int_equal(ei_x_encode_pid(x, &pid), 0);
    } else if (strncmp(s, "@oldpid", 7) == 0) {
        static const char old[] = {ERL_PID_EXT, ERL_SMALL_ATOM_UTF8_EXT, 3, 'a', '@', 'b',
                                   0, 0, 0, 9, 0, 0, 0, 1, 2};
        p->s += 7;
        assert_int_equal(ei_x_append_buf(x, old, sizeof old), 0);
    } else if (strncmp(s, "@ref", 4) == 0) {
        erlang_ref ref;
        memset(&ref, 0, sizeof ref);
        snprintf(ref.node, sizeof ref.node, "caller@host");
        ref.len = 3;
        ref.n[0] = 1;
        ref.creation = 1;
        p->s += 4;
        assert_int_equal(ei_x_encode_ref(x, &ref), 0);
    } else if (strncmp(s, "@bits", 5) == 0) {
        p->s += 5;
        assert_int_equal(ei_x_encode_bitstring(x, "\xE0", 0, 3), 0);
    } else if (strncmp(s, "@oldfloat", 9) == 0) {
        char f[32] = {ERL_FLOAT_EXT};
        snprintf(f + 1, 31, "%.20e", 1.5);
        p->s += 9;
        assert_int_equal(ei_x_append_buf(x, f, 32), 0);
    } else if (*s == '-' || isdigit((unsigned char)*s)) {
        int neg = *s == '-';
        const char *d = s + neg, *e = d;
        while (isdigit((unsigned char)*e))
            e++;
        if (*e == '.' || *e == 'e') {
            char *end;
            double v = strtod(s, &end);
            p->s = end;
            assert_int_equal(ei_x_encode_double(x, v), 0);
        } else {
            p->s = e;
            put_integer(x, d, (size_t)(e - d), neg);
        }
    } else if (islower((unsigned char)*s)) {
        const char *e = s;
        while (isalnum((unsigned char)*e) || *e == '_' || *e == '@')
            e++;
        p->s = e;
        assert_int_equal(ei_x_encode_atom_len(x, s, (int)(e - s)), 0);
    } else {
        fail_msg("term text: unexpected \"%.20s\" in %s", s, p->text);
    }
}

/* Every term made by T() lives until the test's teardown. */
#define ARENA_MAX 4096
static void *arena[ARENA_MAX];
static size_t arena_n;

static void *arena_keep(void *ptr) {
    assert_true(arena_n < ARENA_MAX);
    arena[arena_n++] = ptr;
    return ptr;
}

static int free_arena(void **state) {
    (void)state;
    for (size_t k = 0; k < arena_n; k++)
        free(arena[k]);
    arena_n = 0;
    return 0;
}

struct term {
    const char *buf;
    int len;
};

/* Encodes text; checks that sbx_term_check accepts exactly it; returns an exact-size copy. */
static struct term T(const char *text) {
    struct parser p = {text, text};
    ei_x_buff x;
    ei_x_new(&x);
    p_term(&p, &x);
    p_ws(&p);
    if (*p.s != '\0')
        fail_msg("term text: trailing \"%.20s\" in %s", p.s, text);
    size_t used = 0;
    assert_int_equal(sbx_term_check((const unsigned char *)x.buff, (size_t)x.index, &used), 0);
    assert_int_equal(used, (size_t)x.index);
    char *copy = arena_keep(malloc((size_t)x.index));
    assert_non_null(copy);
    memcpy(copy, x.buff, (size_t)x.index);
    struct term t = {copy, x.index};
    ei_x_free(&x);
    return t;
}

/* printf-style T(). */
static struct term Tf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct term Tf(const char *fmt, ...) {
    char text[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    assert_true(n > 0 && (size_t)n < sizeof text);
    return T(text);
}

/* ---- assertions ---------------------------------------------------------------------- */

static int all_zero(const void *p, size_t n) {
    const unsigned char *u = p;
    for (size_t k = 0; k < n; k++)
        if (u[k] != 0)
            return 0;
    return 1;
}

static void clear_err(struct sbx_badarg *e) {
    e->field = NULL;
    e->why = NULL;
    e->field_term = NULL;
    e->field_term_len = 0;
}

/* {badarg, field, why} with a static field name. */
static void assert_err(const struct sbx_badarg *e, const char *field, const char *why) {
    assert_non_null(e->why);
    assert_non_null(e->field);
    if (strcmp(e->why, why) != 0 || strcmp(e->field, field) != 0 || e->field_term != NULL)
        fail_msg("expected {%s, %s}, got {%s, %s}%s", field, why, e->field, e->why,
                 e->field_term != NULL ? " with field_term" : "");
}

/* {badarg, Key, why} where Key is the term key_text, as sent, inside t. */
static void assert_err_key(const struct sbx_badarg *e, struct term t, const char *key_text,
                           const char *why) {
    struct term k = T(key_text);
    assert_non_null(e->why);
    assert_string_equal(e->why, why);
    assert_non_null(e->field);
    assert_non_null(e->field_term);
    assert_true(e->field_term >= t.buf && e->field_term + e->field_term_len <= t.buf + t.len);
    assert_int_equal(e->field_term_len, (size_t)k.len);
    assert_memory_equal(e->field_term, k.buf, (size_t)k.len);
}

/* The schema a daemon's backend gives type. */
static const struct sbx_config_schema *schema_for(enum sbx_type type) {
    switch (type) {
    case SBX_TYPE_PROCESS: return &sbx_process_config_schema;
    case SBX_TYPE_DOCKER: return &sbx_docker_config_schema;
    case SBX_TYPE_BEAM_NODE: return &sbx_beam_config_schema;
    case SBX_TYPE_VM: return &sbx_vm_config_schema;
    default: return NULL;
    }
}

/* Decodes a config from t: checks the success/failure postconditions. */
static int cfg_t(struct term t, enum sbx_type type, struct sbx_config *c, struct sbx_badarg *e) {
    int idx = 0;
    clear_err(e);
    memset(c, 0xA5, sizeof *c);
    int rc = sbx_config_decode(t.buf, &idx, type, schema_for(type), c, e);
    if (rc == 0) {
        assert_int_equal(idx, t.len);
        assert_int_equal(c->type, type);
        assert_int_equal(c->raw_len, (size_t)t.len);
        assert_memory_equal(c->raw, t.buf, (size_t)t.len);
    } else {
        assert_int_equal(rc, -1);
        assert_int_equal(idx, 0);
        assert_true(all_zero(c, sizeof *c));
        assert_non_null(e->why);
    }
    return rc;
}

static int cfg(const char *text, enum sbx_type type, struct sbx_config *c, struct sbx_badarg *e) {
    return cfg_t(T(text), type, c, e);
}

/* A config that must decode; the caller frees it. */
static void cfg_ok(const char *text, enum sbx_type type, struct sbx_config *c) {
    struct sbx_badarg e;
    if (cfg(text, type, c, &e) != 0)
        fail_msg("%s refused: {%s, %s}", text, e.field ? e.field : "?", e.why);
}

static void assert_strv(const struct sbx_strv *v, size_t n, const char *const *want) {
    assert_int_equal(v->n, n);
    assert_non_null(v->v);
    for (size_t k = 0; k < n; k++)
        assert_string_equal(v->v[k], want[k]);
    assert_null(v->v[n]);
}

static const char *kv_get(const struct sbx_kvv *v, const char *key) {
    for (size_t k = 0; k < v->n; k++)
        if (strcmp(v->v[k].key, key) == 0)
            return v->v[k].value;
    return NULL;
}

/* ---- ids ----------------------------------------------------------------------------- */

static void id_ok(const char *text, const char *want) {
    struct term t = T(text);
    char out[SBX_ID_MAX + 1];
    struct sbx_badarg e;
    int idx = 0;
    clear_err(&e);
    if (sbx_decode_id(t.buf, &idx, out, &e) != 0)
        fail_msg("id %s refused: %s", text, e.why);
    assert_int_equal(idx, t.len);
    assert_string_equal(out, want);
}

static void test_id_ok(void **state) {
    (void)state;
    id_ok("<<\"web1\">>", "web1");
    id_ok("web1", "web1");
    id_ok("'Web1'", "Web1");
    id_ok("@latin1'web1'", "web1");
    id_ok("@atom_d'web2'", "web2");
    id_ok("@atom_v'web3'", "web3");
    id_ok("\"web1\"", "web1");
    id_ok("[119, 101, 98]", "web");
    id_ok("<<\"a\">>", "a");
    id_ok("<<\"0\">>", "0");
    id_ok("<<\"A-b_c.d\">>", "A-b_c.d");
    id_ok("<<\"a..\">>", "a..");
    id_ok("<<\"x\"*63>>", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    id_ok("'x'*63", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    id_ok("\"x\"*63", "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");

    /* Inside a bigger term: starts at *idx, stops after the id. */
    struct term t = T("{<<\"id9\">>, process}");
    int idx = 2; /* SMALL_TUPLE_EXT, arity */
    char out[SBX_ID_MAX + 1];
    struct sbx_badarg e;
    assert_int_equal(sbx_decode_id(t.buf, &idx, out, &e), 0);
    assert_string_equal(out, "id9");
    assert_int_equal(idx, 2 + 5 + 3);
}

static void test_id_errors(void **state) {
    (void)state;
    static const struct {
        const char *text, *why;
    } rows[] = {
        {"5", "not_a_string"},
        {"1.5", "not_a_string"},
        {"{a}", "not_a_string"},
        {"#{}", "not_a_string"},
        {"@pid", "not_a_string"},
        {"@bits", "not_a_string"},
        {"[<<\"a\">>]", "not_a_string"},
        {"[97 | 98]", "not_a_string"},
        {"[97, -1]", "not_a_string"},
        {"<<>>", "empty"},
        {"''", "empty"},
        {"[]", "empty"},
        {"\"\"", "empty"},
        {"<<\"x\"*64>>", "too_long"},
        {"'x'*64", "too_long"},
        {"\"x\"*64", "too_long"},
        {"[<<\"a\">>*100]", "too_long"},
        {"<<\"../x\">>", "invalid_characters"},
        {"\"../x\"", "invalid_characters"},
        {"'../x'", "invalid_characters"},
        {"<<\".hidden\">>", "invalid_characters"},
        {"<<\"-x\">>", "invalid_characters"},
        {"<<\"_x\">>", "invalid_characters"},
        {"<<\"a b\">>", "invalid_characters"},
        {"<<\"a/b\">>", "invalid_characters"},
        {"<<\"a\\0b\">>", "invalid_characters"},
        {"<<\"caf\xc3\xa9\">>", "invalid_characters"},
        {"\"caf\xc3\xa9\"", "invalid_characters"},
        {"'caf\xc3\xa9'", "invalid_characters"},
        {"@latin1'caf\xe9'", "invalid_characters"},
        {"@atom_d'x'*64", "too_long"},
        {"@atom_v'x'*64", "too_long"},
        {"@latin1'\xe9'*32", "too_long"},
        {"<<\"a\\n\">>", "invalid_characters"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct term t = T(rows[r].text);
        char out[SBX_ID_MAX + 1];
        struct sbx_badarg e;
        int idx = 0;
        memset(out, 'Z', sizeof out);
        clear_err(&e);
        if (sbx_decode_id(t.buf, &idx, out, &e) != -1)
            fail_msg("id %s accepted", rows[r].text);
        assert_int_equal(idx, 0);
        assert_true(all_zero(out, sizeof out));
        assert_err(&e, "id", rows[r].why);
    }
}

/* ---- types --------------------------------------------------------------------------- */

static void test_type(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int want; /* -1: refused */
    } rows[] = {
        {"process", SBX_TYPE_PROCESS},   {"docker", SBX_TYPE_DOCKER},
        {"beam_node", SBX_TYPE_BEAM_NODE}, {"vm", SBX_TYPE_VM},
        {"<<\"process\">>", SBX_TYPE_PROCESS}, {"<<\"vm\">>", SBX_TYPE_VM},
        {"@latin1'docker'", SBX_TYPE_DOCKER},
        {"foo", -1}, {"<<\"Process\">>", -1}, {"\"process\"", -1}, {"1", -1},
        {"[]", -1}, {"<<>>", -1}, {"<<\"vm\\0\">>", -1}, {"'x'*200", -1},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct term t = T(rows[r].text);
        enum sbx_type ty = SBX_TYPE_VM;
        struct sbx_badarg e;
        int idx = 0;
        clear_err(&e);
        int rc = sbx_decode_type(t.buf, &idx, &ty, &e);
        if (rows[r].want >= 0) {
            assert_int_equal(rc, 0);
            assert_int_equal(ty, rows[r].want);
            assert_int_equal(idx, t.len);
        } else {
            if (rc != -1)
                fail_msg("type %s accepted", rows[r].text);
            assert_int_equal(idx, 0);
            assert_err(&e, "type", "unknown_value");
        }
    }
}

/* ---- commands ------------------------------------------------------------------------ */

static void cmd_ok(const char *text, size_t n, const char *const *want) {
    struct term t = T(text);
    struct sbx_strv v;
    struct sbx_badarg e;
    int idx = 0;
    clear_err(&e);
    if (sbx_decode_cmd(t.buf, &idx, "cmd", &v, &e) != 0)
        fail_msg("cmd %s refused: %s", text, e.why);
    assert_int_equal(idx, t.len);
    assert_strv(&v, n, want);
    struct sbx_config c; /* frees through the public API */
    memset(&c, 0, sizeof c);
    c.cmd = v;
    sbx_config_free(&c);
}

static void test_cmd_ok(void **state) {
    (void)state;
    cmd_ok("[<<\"sleep\">>, <<\"60\">>]", 2, (const char *[]){"sleep", "60"});
    cmd_ok("[\"sleep\", \"60\"]", 2, (const char *[]){"sleep", "60"});
    cmd_ok("[<<\"ls\">>, \"-la\", <<\"/tmp\">>]", 3, (const char *[]){"ls", "-la", "/tmp"});
    cmd_ok("[<<\"true\">>]", 1, (const char *[]){"true"});
    cmd_ok("[<<\"printf\">>, <<>>, []]", 3, (const char *[]){"printf", "", ""});
    cmd_ok("<<\"echo hi | wc -c\">>", 3,
           (const char *[]){"/bin/sh", "-c", "echo hi | wc -c"});
    /* A charlist is a command line too (no argv is a list of integers). */
    cmd_ok("\"sleep 60\"", 3, (const char *[]){"/bin/sh", "-c", "sleep 60"});
    cmd_ok("[101, 99, 104, 111]", 3, (const char *[]){"/bin/sh", "-c", "echo"});
    /* Code points are UTF-8 encoded; latin-1 bytes of a STRING_EXT too. */
    cmd_ok("[<<\"echo\">>, \"caf\xc3\xa9 \xf0\x9f\x98\x80\"]", 2,
           (const char *[]){"echo", "caf\xc3\xa9 \xf0\x9f\x98\x80"});
    cmd_ok("[<<\"echo\">>, \"\xc3\xa9\"]", 2, (const char *[]){"echo", "\xc3\xa9"});
    /* Binaries are bytes as they are (not necessarily UTF-8). */
    cmd_ok("[<<\"echo\">>, <<\"\\xff\\x01\">>]", 2, (const char *[]){"echo", "\xff\x01"});

    /* Limits: 4096 elements of 64 KiB are the most. */
    struct term t = T("[<<\"x\">>*4096]");
    struct sbx_strv v;
    struct sbx_badarg e;
    int idx = 0;
    assert_int_equal(sbx_decode_cmd(t.buf, &idx, "cmd", &v, &e), 0);
    assert_int_equal(v.n, 4096);
    assert_null(v.v[4096]);
    struct sbx_config c;
    memset(&c, 0, sizeof c);
    c.cmd = v;
    sbx_config_free(&c);

    t = T("[<<\"x\"*65536>>, \"y\"*65536]");
    idx = 0;
    assert_int_equal(sbx_decode_cmd(t.buf, &idx, "cmd", &v, &e), 0);
    assert_int_equal(strlen(v.v[0]), 65536);
    assert_int_equal(strlen(v.v[1]), 65536);
    memset(&c, 0, sizeof c);
    c.cmd = v;
    sbx_config_free(&c);

    t = T("<<\"x\"*65536>>");
    idx = 0;
    assert_int_equal(sbx_decode_cmd(t.buf, &idx, "cmd", &v, &e), 0);
    assert_int_equal(strlen(v.v[2]), 65536);
    memset(&c, 0, sizeof c);
    c.cmd = v;
    sbx_config_free(&c);
}

static void test_cmd_errors(void **state) {
    (void)state;
    static const struct {
        const char *text, *why;
    } rows[] = {
        {"[]", "empty"},
        {"<<>>", "empty"},
        {"\"\"", "empty"},
        {"[<<>>]", "empty"},
        {"[[], <<\"x\">>]", "empty"},
        {"ls", "not_a_list"},
        {"42", "not_a_list"},
        {"1.5", "not_a_list"},
        {"#{}", "not_a_list"},
        {"{<<\"ls\">>}", "not_a_list"},
        {"@pid", "not_a_list"},
        {"@bits", "not_a_list"},
        {"[<<\"ls\">> | <<\"-l\">>]", "not_a_list"},
        {"[<<\"ls\">>, <<\"-l\">> | foo]", "not_a_list"},
        {"[<<\"ls\">>, 42]", "not_a_string"},
        {"[<<\"ls\">>, '-l']", "not_a_string"},
        {"[ls]", "not_a_string"},
        {"[<<\"ls\">>, [<<\"a\">>]]", "not_a_string"},
        {"[<<\"ls\">>, {}]", "not_a_string"},
        {"[<<\"ls\">>, @bits]", "not_a_string"},
        {"[<<\"ls\">>, [97 | 98]]", "not_a_string"},
        {"[104, <<\"a\">>]", "not_a_string"},
        {"[104 | 105]", "not_a_string"},
        {"[1114112]", "not_a_string"},
        {"[55296]", "not_a_string"},
        {"[-1]", "not_a_string"},
        {"[<<\"a\\0b\">>]", "contains_nul"},
        {"[<<\"ls\">>, \"a\\0\"]", "contains_nul"},
        {"<<\"a\\0b\">>", "contains_nul"},
        {"[104, 0]", "contains_nul"},
        {"<<\"x\"*65537>>", "too_long"},
        {"\"x\"*65537", "too_long"},
        {"[<<\"ls\">>, <<\"x\"*65537>>]", "too_long"},
        {"[<<\"ls\">>, \"\xc3\xa9\"*32769]", "too_long"},
        {"[<<\"x\">>*4097]", "too_many"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct term t = T(rows[r].text);
        struct sbx_strv v;
        struct sbx_badarg e;
        int idx = 0;
        clear_err(&e);
        memset(&v, 0xA5, sizeof v);
        if (sbx_decode_cmd(t.buf, &idx, "exec_cmd", &v, &e) != -1)
            fail_msg("cmd %s accepted", rows[r].text);
        assert_int_equal(idx, 0);
        assert_true(all_zero(&v, sizeof v));
        assert_err(&e, "exec_cmd", rows[r].why);
    }
}

/* ---- create configs: happy paths ----------------------------------------------------- */

static void test_config_defaults(void **state) {
    (void)state;
    struct sbx_config c;
    cfg_ok("#{cmd => [<<\"sleep\">>, <<\"60\">>]}", SBX_TYPE_PROCESS, &c);
    assert_strv(&c.cmd, 2, (const char *[]){"sleep", "60"});
    assert_int_equal(c.env.n, 0);
    assert_null(c.env.v);
    assert_null(c.cwd);
    assert_int_equal(c.labels.n, 0);
    assert_int_equal(c.memory_mb, 0);
    assert_true(c.cpus == 0.0);
    assert_int_equal(c.pids_limit, 0);
    assert_int_equal(c.ttl_ms, 0);
    assert_null(c.owner);
    assert_int_equal(c.owner_len, 0);
    assert_int_equal(c.health.type, SBX_HC_NONE);
    assert_null(c.health.path);
    assert_int_equal(c.restart, SBX_RESTART_NEVER);
    assert_int_equal(c.max_restarts, 5);
    assert_null(c.workspace);
    assert_int_equal(c.metrics_interval_ms, 1000);
    assert_int_equal(c.isolation, SBX_ISOLATION_NONE);
    assert_null(c.user);
    sbx_config_free(&c);
    assert_true(all_zero(&c, sizeof c));
    sbx_config_free(&c); /* safe on a zeroed one */
    sbx_config_free(NULL);
}

static void test_config_every_key(void **state) {
    (void)state;
    struct sbx_config c;
    struct term t = T("#{cmd => <<\"exec ./server\">>,"
                      "  env => #{<<\"PORT\">> => <<\"4000\">>, \"MIX_ENV\" => \"prod\","
                      "           <<\"EMPTY\">> => <<>>},"
                      "  cwd => <<\"/srv/app\">>,"
                      "  labels => #{team => <<\"core\">>, <<\"tier\">> => \"web\","
                      "              \"zone\" => <<\"eu\">>},"
                      "  memory_mb => 512, cpus => 1.5, pids_limit => 256,"
                      "  ttl_ms => 600000, owner => @pid,"
                      "  health_check => #{type => http, port => 4000, path => <<\"/ready\">>,"
                      "                    status => 204, timeout_ms => 5000,"
                      "                    interval_ms => 100},"
                      "  restart => on_failure, max_restarts => 3,"
                      "  workspace => <<\"/var/lib/sbx/ws1\">>, metrics_interval_ms => 250,"
                      "  isolation => namespaces, user => <<\"nobody\">>}");
    struct sbx_badarg e;
    assert_int_equal(cfg_t(t, SBX_TYPE_PROCESS, &c, &e), 0);
    assert_strv(&c.cmd, 3, (const char *[]){"/bin/sh", "-c", "exec ./server"});
    assert_int_equal(c.env.n, 3);
    assert_string_equal(kv_get(&c.env, "PORT"), "4000");
    assert_string_equal(kv_get(&c.env, "MIX_ENV"), "prod");
    assert_string_equal(kv_get(&c.env, "EMPTY"), "");
    /* sorted by key */
    assert_string_equal(c.env.v[0].key, "EMPTY");
    assert_string_equal(c.env.v[1].key, "MIX_ENV");
    assert_string_equal(c.env.v[2].key, "PORT");
    assert_string_equal(c.cwd, "/srv/app");
    assert_int_equal(c.labels.n, 3);
    assert_string_equal(kv_get(&c.labels, "team"), "core");
    assert_string_equal(kv_get(&c.labels, "tier"), "web");
    assert_string_equal(kv_get(&c.labels, "zone"), "eu");
    assert_int_equal(c.memory_mb, 512);
    assert_true(c.cpus == 1.5);
    assert_int_equal(c.pids_limit, 256);
    assert_int_equal(c.ttl_ms, 600000);
    struct term pid = T("@pid");
    assert_int_equal(c.owner_len, (size_t)pid.len);
    assert_memory_equal(c.owner, pid.buf, (size_t)pid.len);
    assert_int_equal(c.health.type, SBX_HC_HTTP);
    assert_int_equal(c.health.port, 4000);
    assert_string_equal(c.health.path, "/ready");
    assert_int_equal(c.health.status, 204);
    assert_int_equal(c.health.timeout_ms, 5000);
    assert_int_equal(c.health.interval_ms, 100);
    assert_int_equal(c.restart, SBX_RESTART_ON_FAILURE);
    assert_int_equal(c.max_restarts, 3);
    assert_string_equal(c.workspace, "/var/lib/sbx/ws1");
    assert_int_equal(c.metrics_interval_ms, 250);
    assert_int_equal(c.isolation, SBX_ISOLATION_NAMESPACES);
    assert_string_equal(c.user, "nobody");
    sbx_config_free(&c);
}

static void test_config_binary_keys(void **state) {
    (void)state;
    struct sbx_config c;
    cfg_ok("#{<<\"cmd\">> => [<<\"true\">>], <<\"memory_mb\">> => 64,"
           "  <<\"restart\">> => <<\"always\">>, <<\"isolation\">> => <<\"none\">>,"
           "  <<\"owner\">> => @oldpid, <<\"cpus\">> => 2, <<\"user\">> => 1000,"
           "  @latin1'ttl_ms' => 1000, @atom_d'pids_limit' => 7, @atom_v'max_restarts' => 0}",
           SBX_TYPE_PROCESS, &c);
    assert_strv(&c.cmd, 1, (const char *[]){"true"});
    assert_int_equal(c.memory_mb, 64);
    assert_int_equal(c.restart, SBX_RESTART_ALWAYS);
    assert_int_equal(c.isolation, SBX_ISOLATION_NONE);
    struct term old = T("@oldpid");
    assert_int_equal(c.owner_len, (size_t)old.len);
    assert_memory_equal(c.owner, old.buf, (size_t)old.len);
    assert_true(c.cpus == 2.0);
    assert_string_equal(c.user, "1000");
    assert_int_equal(c.ttl_ms, 1000);
    assert_int_equal(c.pids_limit, 7);
    assert_int_equal(c.max_restarts, 0);
    sbx_config_free(&c);
}

static void test_config_enums(void **state) {
    (void)state;
    static const struct {
        const char *text;
        int restart;
    } rs[] = {{"never", SBX_RESTART_NEVER}, {"on_failure", SBX_RESTART_ON_FAILURE},
              {"always", SBX_RESTART_ALWAYS}, {"<<\"on_failure\">>", SBX_RESTART_ON_FAILURE}};
    for (size_t r = 0; r < sizeof rs / sizeof rs[0]; r++) {
        struct sbx_config c;
        struct term t = Tf("#{cmd => <<\"x\">>, restart => %s}", rs[r].text);
        struct sbx_badarg e;
        assert_int_equal(cfg_t(t, SBX_TYPE_PROCESS, &c, &e), 0);
        assert_int_equal(c.restart, rs[r].restart);
        sbx_config_free(&c);
    }
    struct sbx_config c;
    cfg_ok("#{cmd => <<\"x\">>, isolation => none}", SBX_TYPE_PROCESS, &c);
    assert_int_equal(c.isolation, SBX_ISOLATION_NONE);
    sbx_config_free(&c);
    cfg_ok("#{cmd => <<\"x\">>, isolation => <<\"namespaces\">>}", SBX_TYPE_PROCESS, &c);
    assert_int_equal(c.isolation, SBX_ISOLATION_NAMESPACES);
    sbx_config_free(&c);
}

static void test_config_user(void **state) {
    (void)state;
    static const struct {
        const char *text, *want;
    } rows[] = {{"<<\"nobody\">>", "nobody"}, {"\"www-data\"", "www-data"},
                {"0", "0"},                   {"1000", "1000"},
                {"4294967294", "4294967294"}, {"<<\"u\"*256>>", NULL}};
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct sbx_config c;
        struct sbx_badarg e;
        struct term t = Tf("#{cmd => <<\"x\">>, user => %s}", rows[r].text);
        assert_int_equal(cfg_t(t, SBX_TYPE_PROCESS, &c, &e), 0);
        if (rows[r].want != NULL)
            assert_string_equal(c.user, rows[r].want);
        else
            assert_int_equal(strlen(c.user), 256);
        sbx_config_free(&c);
    }
    /* beam_node sandboxes run erl as a host process: they take `user` too. */
    struct sbx_config c;
    struct sbx_badarg e;
    assert_int_equal(cfg_t(Tf("#{user => <<\"nobody\">>}"), SBX_TYPE_BEAM_NODE, &c, &e), 0);
    assert_string_equal(c.user, "nobody");
    sbx_config_free(&c);
}

static void test_config_cpus(void **state) {
    (void)state;
    static const struct {
        const char *text;
        double want; /* 0: refused with why */
        const char *why;
    } rows[] = {
        {"1", 1.0, NULL},          {"0.5", 0.5, NULL},         {"1024", 1024.0, NULL},
        {"1024.0", 1024.0, NULL},  {"0.001", 0.001, NULL},
        {"0", 0, "out_of_range"},  {"0.0", 0, "out_of_range"}, {"-1", 0, "out_of_range"},
        {"-0.5", 0, "out_of_range"}, {"1024.5", 0, "out_of_range"},
        {"1025", 0, "out_of_range"}, {"100000000000000000000000", 0, "out_of_range"},
        {"two", 0, "not_a_number"}, {"<<\"1\">>", 0, "not_a_number"},
        {"\"1\"", 0, "not_a_number"}, {"[]", 0, "not_a_number"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct sbx_config c;
        struct sbx_badarg e;
        struct term t = Tf("#{cmd => <<\"x\">>, cpus => %s}", rows[r].text);
        int rc = cfg_t(t, SBX_TYPE_PROCESS, &c, &e);
        if (rows[r].why == NULL) {
            if (rc != 0)
                fail_msg("cpus %s refused: %s", rows[r].text, e.why);
            assert_true(c.cpus == rows[r].want);
            sbx_config_free(&c);
        } else {
            assert_int_equal(rc, -1);
            assert_err(&e, "cpus", rows[r].why);
        }
    }
}

/* Every integer key: both bounds accepted, one past refused, non-integers refused. */
static void test_config_integer_bounds(void **state) {
    (void)state;
    static const struct {
        const char *key;
        long long lo, hi;
        size_t off; /* where the value lands */
    } keys[] = {
        {"memory_mb", 4, 1048576, offsetof(struct sbx_config, memory_mb)},
        {"pids_limit", 1, 1000000, offsetof(struct sbx_config, pids_limit)},
        {"ttl_ms", 1, TTL_MAX, offsetof(struct sbx_config, ttl_ms)},
        {"max_restarts", 0, 1000000, offsetof(struct sbx_config, max_restarts)},
        {"metrics_interval_ms", 100, 3600000, offsetof(struct sbx_config, metrics_interval_ms)},
    };
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        long long good[] = {keys[k].lo, keys[k].hi};
        for (size_t g = 0; g < 2; g++) {
            struct sbx_config c;
            struct sbx_badarg e;
            struct term t = Tf("#{cmd => <<\"x\">>, %s => %lld}", keys[k].key, good[g]);
            assert_int_equal(cfg_t(t, SBX_TYPE_PROCESS, &c, &e), 0);
            long long got;
            const char *p = (const char *)&c + keys[k].off;
            if (strcmp(keys[k].key, "max_restarts") == 0)
                got = *(const int *)(const void *)p;
            else if (strcmp(keys[k].key, "ttl_ms") == 0 ||
                     strcmp(keys[k].key, "metrics_interval_ms") == 0)
                got = *(const int64_t *)(const void *)p;
            else
                got = *(const long *)(const void *)p;
            assert_int_equal(got, good[g]);
            sbx_config_free(&c);
        }
        char lo1[32], hi1[32];
        snprintf(lo1, sizeof lo1, "%lld", keys[k].lo - 1);
        snprintf(hi1, sizeof hi1, "%lld", keys[k].hi + 1);
        const struct {
            const char *text, *why;
        } bad[] = {{lo1, "out_of_range"},
                   {hi1, "out_of_range"},
                   {"-1", "out_of_range"},
                   {"1180591620717411303424", "out_of_range"},
                   {"-1180591620717411303424", "out_of_range"},
                   {"9223372036854775808", "out_of_range"},
                   {"12.0", "not_an_integer"},
                   {"<<\"12\">>", "not_an_integer"},
                   {"\"12\"", "not_an_integer"},
                   {"infinity", "not_an_integer"},
                   {"[]", "not_an_integer"}};
        for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
            struct sbx_config c;
            struct sbx_badarg e;
            struct term t = Tf("#{cmd => <<\"x\">>, %s => %s}", keys[k].key, bad[b].text);
            assert_int_equal(cfg_t(t, SBX_TYPE_PROCESS, &c, &e), -1);
            assert_err(&e, keys[k].key, bad[b].why);
        }
    }
}

static void test_config_labels(void **state) {
    (void)state;
    struct sbx_config c;
    struct sbx_badarg e;
    /* 64 labels with 256-byte keys and values are the most. */
    char text[4096 * 8];
    size_t w;
    w = (size_t)snprintf(text, sizeof text, "#{cmd => <<\"x\">>, labels => #{");
    for (int k = 0; k < 64; k++)
        w += (size_t)snprintf(text + w, sizeof text - w, "%s'k%02d' => <<\"v\"*256>>",
                              k ? ", " : "", k);
    snprintf(text + w, sizeof text - w, "}}");
    cfg_ok(text, SBX_TYPE_PROCESS, &c);
    assert_int_equal(c.labels.n, 64);
    assert_string_equal(c.labels.v[0].key, "k00");
    assert_string_equal(c.labels.v[63].key, "k63");
    assert_int_equal(strlen(c.labels.v[5].value), 256);
    sbx_config_free(&c);

    w = (size_t)snprintf(text, sizeof text, "#{cmd => <<\"x\">>, labels => #{");
    for (int k = 0; k < 65; k++)
        w += (size_t)snprintf(text + w, sizeof text - w, "%s'k%02d' => <<\"v\">>", k ? ", " : "",
                              k);
    snprintf(text + w, sizeof text - w, "}}");
    assert_int_equal(cfg(text, SBX_TYPE_PROCESS, &c, &e), -1);
    assert_err(&e, "labels", "too_many");

    cfg_ok("#{cmd => <<\"x\">>, labels => #{<<\"k\"*256>> => \"v\"*256, 'a' => <<>>}}",
           SBX_TYPE_PROCESS, &c);
    assert_int_equal(c.labels.n, 2);
    assert_string_equal(kv_get(&c.labels, "a"), "");
    sbx_config_free(&c);
}

static void test_config_env(void **state) {
    (void)state;
    struct sbx_config c;
    char text[8 * 4096 * 4];
    size_t w = (size_t)snprintf(text, sizeof text, "#{cmd => <<\"x\">>, env => #{");
    for (int k = 0; k < 4096; k++)
        w += (size_t)snprintf(text + w, sizeof text - w, "%s<<\"V%d\">> => <<\"1\">>",
                              k ? "," : "", k);
    snprintf(text + w, sizeof text - w, "}}");
    /* 4096 entries is the most */
    {
        struct term t = T(text);
        struct sbx_badarg e;
        assert_int_equal(cfg_t(t, SBX_TYPE_PROCESS, &c, &e), 0);
        assert_int_equal(c.env.n, 4096);
        sbx_config_free(&c);
    }
    w = (size_t)snprintf(text, sizeof text, "#{cmd => <<\"x\">>, env => #{");
    for (int k = 0; k < 4097; k++)
        w += (size_t)snprintf(text + w, sizeof text - w, "%s<<\"V%d\">> => <<\"1\">>",
                              k ? "," : "", k);
    snprintf(text + w, sizeof text - w, "}}");
    {
        struct term t = T(text);
        struct sbx_badarg e;
        assert_int_equal(cfg_t(t, SBX_TYPE_PROCESS, &c, &e), -1);
        assert_err(&e, "env", "too_many");
    }
    cfg_ok("#{cmd => <<\"x\">>, env => #{<<\"K\"*32768>> => \"v\"*32768, \"U\" => "
           "\"\xe2\x82\xac\"}}",
           SBX_TYPE_PROCESS, &c);
    assert_int_equal(c.env.n, 2);
    assert_string_equal(kv_get(&c.env, "U"), "\xe2\x82\xac");
    sbx_config_free(&c);
    cfg_ok("#{cmd => <<\"x\">>, env => #{}}", SBX_TYPE_PROCESS, &c);
    assert_int_equal(c.env.n, 0);
    sbx_config_free(&c);
}

static void test_config_health_checks(void **state) {
    (void)state;
    struct sbx_config c;
    cfg_ok("#{cmd => <<\"x\">>, health_check => #{type => tcp, port => 80}}", SBX_TYPE_PROCESS,
           &c);
    assert_int_equal(c.health.type, SBX_HC_TCP);
    assert_int_equal(c.health.port, 80);
    assert_null(c.health.path);
    assert_int_equal(c.health.timeout_ms, 30000);
    assert_int_equal(c.health.interval_ms, 250);
    sbx_config_free(&c);

    cfg_ok("#{cmd => <<\"x\">>, health_check => #{<<\"type\">> => <<\"http\">>, "
           "<<\"port\">> => 65535}}",
           SBX_TYPE_PROCESS, &c);
    assert_int_equal(c.health.type, SBX_HC_HTTP);
    assert_int_equal(c.health.port, 65535);
    assert_string_equal(c.health.path, "/");
    assert_int_equal(c.health.status, 200);
    assert_int_equal(c.health.timeout_ms, 30000);
    assert_int_equal(c.health.interval_ms, 250);
    sbx_config_free(&c);

    cfg_ok("#{cmd => <<\"x\">>, health_check => #{type => http, port => 1, path => \"/h?x=1\","
           " status => 599, timeout_ms => 86400000, interval_ms => 60000}}",
           SBX_TYPE_PROCESS, &c);
    assert_string_equal(c.health.path, "/h?x=1");
    assert_int_equal(c.health.port, 1);
    assert_int_equal(c.health.status, 599);
    assert_int_equal(c.health.timeout_ms, 86400000);
    assert_int_equal(c.health.interval_ms, 60000);
    sbx_config_free(&c);

    cfg_ok("#{cmd => <<\"x\">>, health_check => #{type => http, port => 8080, status => 100,"
           " timeout_ms => 1, interval_ms => 10}}",
           SBX_TYPE_PROCESS, &c);
    assert_int_equal(c.health.status, 100);
    assert_int_equal(c.health.timeout_ms, 1);
    assert_int_equal(c.health.interval_ms, 10);
    sbx_config_free(&c);

    cfg_ok("#{cmd => <<\"x\">>, health_check => #{type => exec, cmd => [<<\"pg_isready\">>, "
           "\"-q\"]}}",
           SBX_TYPE_PROCESS, &c);
    assert_int_equal(c.health.type, SBX_HC_EXEC);
    assert_strv(&c.health.cmd, 2, (const char *[]){"pg_isready", "-q"});
    sbx_config_free(&c);

    cfg_ok("#{cmd => <<\"x\">>, health_check => #{type => exec, cmd => <<\"test -f /ok\">>}}",
           SBX_TYPE_PROCESS, &c);
    assert_strv(&c.health.cmd, 3, (const char *[]){"/bin/sh", "-c", "test -f /ok"});
    sbx_config_free(&c);
}

static void test_config_other_types(void **state) {
    (void)state;
    struct sbx_config c;
    cfg_ok("#{image => <<\"app:1\">>}", SBX_TYPE_DOCKER, &c);
    assert_int_equal(c.cmd.n, 0);
    sbx_config_free(&c);
    cfg_ok("#{<<\"image\">> => \"postgres:16\", ports => [{5432, 5432}, #{container => 80, protocol => udp}],"
           " volumes => [{<<\"/a\">>, <<\"/b\">>}], network => <<\"bridge\">>,"
           " pull => if_missing, cmd => [<<\"postgres\">>], env => #{<<\"A\">> => <<\"1\">>},"
           " workspace => <<\"/tmp/ws\">>, memory_mb => 256, labels => #{a => <<\"b\">>}}",
           SBX_TYPE_DOCKER, &c);
    assert_strv(&c.cmd, 1, (const char *[]){"postgres"});
    assert_int_equal(c.memory_mb, 256);
    assert_string_equal(c.workspace, "/tmp/ws");
    assert_string_equal(c.image, "postgres:16");
    assert_int_equal(c.nports, 2);
    assert_int_equal(c.ports[0].host, 5432);
    assert_int_equal(c.ports[1].host, 0);
    assert_int_equal(c.ports[1].container, 80);
    assert_string_equal(c.ports[1].proto, "udp");
    assert_strv(&c.volumes, 1, (const char *[]){"/a:/b"});
    assert_string_equal(c.network, "bridge");
    assert_int_equal(c.pull, SBX_PULL_IF_MISSING);
    sbx_config_free(&c);
    cfg_ok("#{image => <<\"a\">>, volumes => [<<\"/h:/c:ro\">>], pull => never,"
           " beam => #{name => 'n@h', cookie => c}}", SBX_TYPE_DOCKER, &c);
    assert_strv(&c.volumes, 1, (const char *[]){"/h:/c:ro"});
    assert_int_equal(c.pull, SBX_PULL_NEVER);
    assert_true(c.has_beam);
    assert_string_equal(c.node_name, "n@h");
    assert_string_equal(c.cookie, "c");
    sbx_config_free(&c);
    cfg_ok("#{image => <<\"a\">>, ports => [], volumes => #{}, pull => <<\"always\">>}",
           SBX_TYPE_DOCKER, &c);
    sbx_config_free(&c);

    cfg_ok("#{}", SBX_TYPE_BEAM_NODE, &c);
    sbx_config_free(&c);
    cfg_ok("#{name => worker1, code_paths => [<<\"/app/ebin\">>, \"/lib/ebin\"],"
           " apps => [crypto, <<\"my_app\">>], erl_args => [<<\"+S\">>, <<\"2\">>],"
           " cookie => secret, owner => @pid}",
           SBX_TYPE_BEAM_NODE, &c);
    assert_non_null(c.owner);
    assert_string_equal(c.node_name, "worker1");
    assert_strv(&c.code_paths, 2, (const char *[]){"/app/ebin", "/lib/ebin"});
    assert_strv(&c.apps, 2, (const char *[]){"crypto", "my_app"});
    assert_strv(&c.erl_args, 2, (const char *[]){"+S", "2"});
    assert_string_equal(c.cookie, "secret");
    sbx_config_free(&c);
    cfg_ok("#{name => <<\"w\">>, erl_args => <<\"+S 2\">>, cookie => <<\"c\">>, apps => [],"
           " code_paths => []}",
           SBX_TYPE_BEAM_NODE, &c);
    assert_strv(&c.erl_args, 2, (const char *[]){"+S", "2"});
    sbx_config_free(&c);

    /* vm: its own keys in ext, and its defaults for memory_mb and cpus. */
    cfg_ok("#{memory_mb => 1024, cpus => 2}", SBX_TYPE_VM, &c);
    assert_int_equal(c.memory_mb, 1024);
    assert_true(c.cpus == 2.0);
    assert_ptr_equal(c.schema, &sbx_vm_config_schema);
    sbx_config_free(&c);
    cfg_ok("#{}", SBX_TYPE_VM, &c);
    assert_int_equal(c.memory_mb, 256);
    assert_true(c.cpus == 1.0);
    assert_int_equal(sbx_vm_cfg(&c)->accel, SBX_VM_ACCEL_AUTO);
    assert_int_equal(sbx_vm_cfg(&c)->network, SBX_VM_NET_NONE);
    assert_int_equal(sbx_vm_cfg(&c)->boot_timeout_ms, 120000);
    assert_null(sbx_vm_cfg(&c)->kernel);
    sbx_config_free(&c);
    cfg_ok("#{accel => tcg, network => user, ports => [{8080, 80}, #{host => 2222, guest => 22}],"
           " boot_timeout_ms => 5000, image => #{kernel => <<\"/etc/passwd\">>,"
           " initrd => <<\"/etc/passwd\">>, disk => <<\"/etc/passwd\">>, format => raw},"
           " cmd => <<\"ls\">>}", SBX_TYPE_VM, &c);
    const struct sbx_vm_config *v = sbx_vm_cfg(&c);
    assert_int_equal(v->accel, SBX_VM_ACCEL_TCG);
    assert_int_equal(v->network, SBX_VM_NET_USER);
    assert_int_equal(v->nports, 2);
    assert_int_equal(v->ports[1].host, 2222);
    assert_int_equal(v->ports[1].guest, 22);
    assert_int_equal(v->boot_timeout_ms, 5000);
    assert_string_equal(v->kernel, "/etc/passwd");
    assert_string_equal(v->disk, "/etc/passwd");
    assert_true(v->disk_raw);
    sbx_config_free(&c);
    cfg_ok("#{image => default}", SBX_TYPE_VM, &c);
    sbx_config_free(&c);
}

/* The config starts inside a bigger term, not at 0: *idx, raw and field_term follow. */
static void test_config_at_offset(void **state) {
    (void)state;
    struct term t = T("{create, #{cmd => <<\"x\">>, ttl_ms => 5}, trailing}");
    struct term m = T("#{cmd => <<\"x\">>, ttl_ms => 5}");
    struct sbx_config c;
    struct sbx_badarg e;
    int start = 2 + 8; /* tuple header, atom create (SMALL_ATOM_UTF8: 2 + 6) */
    int idx = start;
    assert_int_equal(sbx_config_decode(t.buf, &idx, SBX_TYPE_PROCESS, &sbx_process_config_schema, &c, &e), 0);
    assert_int_equal(idx, start + m.len);
    assert_int_equal(c.raw_len, (size_t)m.len);
    assert_memory_equal(c.raw, m.buf, (size_t)m.len);
    assert_int_equal(c.ttl_ms, 5);
    sbx_config_free(&c);

    t = T("{create, #{cmd => <<\"x\">>, bogus => 5}}");
    idx = start;
    clear_err(&e);
    assert_int_equal(sbx_config_decode(t.buf, &idx, SBX_TYPE_PROCESS, &sbx_process_config_schema, &c, &e), -1);
    assert_int_equal(idx, start);
    assert_err_key(&e, t, "bogus", "unknown_key");

    /* a type outside the enum */
    t = T("#{cmd => <<\"x\">>}");
    idx = 0;
    assert_int_equal(sbx_config_decode(t.buf, &idx, (enum sbx_type)9, NULL, &c, &e), -1);
    assert_err(&e, "type", "unknown_value");
    assert_true(all_zero(&c, sizeof c));
}

/* ---- create configs: the malformed-input table --------------------------------------- */

struct bad_config {
    enum sbx_type type;
    const char *text;
    const char *field; /* a static field, or NULL when key names the key term */
    const char *key;
    const char *why;
};

#define P SBX_TYPE_PROCESS
#define D SBX_TYPE_DOCKER
#define B SBX_TYPE_BEAM_NODE
#define V SBX_TYPE_VM
#define CMD "cmd => <<\"ls\">>"
#define HC(x) "#{" CMD ", health_check => #{" x "}}"

static const struct bad_config BAD_CONFIGS[] = {
    /* not a map, bad keys */
    {P, "[]", "config", NULL, "not_a_map"},
    {P, "<<\"cmd\">>", "config", NULL, "not_a_map"},
    {P, "[{cmd, <<\"ls\">>}]", "config", NULL, "not_a_map"},
    {P, "nil", "config", NULL, "not_a_map"},
    {P, "{}", "config", NULL, "not_a_map"},
    {P, "42", "config", NULL, "not_a_map"},
    {P, "#{1 => 2}", "config", NULL, "bad_key"},
    {P, "#{\"cmd\" => <<\"ls\">>}", "config", NULL, "bad_key"},
    {P, "#{{cmd} => 1}", "config", NULL, "bad_key"},
    {P, "#{" CMD ", @bits => 1}", "config", NULL, "bad_key"},
    {P, "#{" CMD ", @pid => 1}", "config", NULL, "bad_key"},
    /* unknown and duplicate keys, as atom and as binary */
    {P, "#{foo => 1}", NULL, "foo", "unknown_key"},
    {P, "#{<<\"foo\">> => 1}", NULL, "<<\"foo\">>", "unknown_key"},
    {P, "#{" CMD ", 'Cmd' => 1}", NULL, "'Cmd'", "unknown_key"},
    {P, "#{" CMD ", <<\"CMD\">> => 1}", NULL, "<<\"CMD\">>", "unknown_key"},
    {P, "#{" CMD ", type => process}", NULL, "type", "unknown_key"},
    {P, "#{" CMD ", image => <<\"x\">>}", NULL, "image", "unknown_key"},
    {P, "#{" CMD ", <<\"image\">> => <<\"x\">>}", NULL, "<<\"image\">>", "unknown_key"},
    {P, "#{" CMD ", kernel => <<\"x\">>}", NULL, "kernel", "unknown_key"},
    {P, "#{" CMD ", cookie => c}", NULL, "cookie", "unknown_key"},
    {P, "#{" CMD ", @latin1'caf\xe9' => 1}", NULL, "@latin1'caf\xe9'", "unknown_key"},
    {P, "#{" CMD ", 'x'*255 => 1}", NULL, "'x'*255", "unknown_key"},
    {P, "#{" CMD ", <<\"x\"*70000>> => 1}", NULL, "<<\"x\"*70000>>", "unknown_key"},
    {P, "#{" CMD ", <<\"cmd\\0\">> => 1}", NULL, "<<\"cmd\\0\">>", "unknown_key"},
    {P, "#{" CMD ", <<>> => 1}", NULL, "<<>>", "unknown_key"},
    {P, "#{" CMD ", <<\"cmd\">> => <<\"ls\">>}", NULL, "<<\"cmd\">>", "duplicate_key"},
    {P, "#{" CMD ", @latin1'cmd' => <<\"ls\">>}", NULL, "@latin1'cmd'", "duplicate_key"},
    /* required keys */
    {P, "#{}", "cmd", NULL, "missing"},
    {P, "#{env => #{}}", "cmd", NULL, "missing"},
    {D, "#{}", "image", NULL, "missing"},
    {D, "#{" CMD "}", "image", NULL, "missing"},
    /* cmd */
    {P, "#{cmd => []}", "cmd", NULL, "empty"},
    {P, "#{cmd => <<>>}", "cmd", NULL, "empty"},
    {P, "#{cmd => [<<>>, <<\"x\">>]}", "cmd", NULL, "empty"},
    {P, "#{cmd => ls}", "cmd", NULL, "not_a_list"},
    {P, "#{cmd => 42}", "cmd", NULL, "not_a_list"},
    {P, "#{cmd => [<<\"ls\">> | <<\"-l\">>]}", "cmd", NULL, "not_a_list"},
    {P, "#{cmd => [<<\"ls\">>, 42]}", "cmd", NULL, "not_a_string"},
    {P, "#{cmd => [<<\"ls\">>, '-l']}", "cmd", NULL, "not_a_string"},
    {P, "#{cmd => [<<\"ls\">>, [<<\"-l\">>]]}", "cmd", NULL, "not_a_string"},
    {P, "#{cmd => [104 | 105]}", "cmd", NULL, "not_a_string"},
    {P, "#{cmd => [1114112]}", "cmd", NULL, "not_a_string"},
    {P, "#{cmd => [<<\"a\\0b\">>]}", "cmd", NULL, "contains_nul"},
    {P, "#{cmd => <<\"x\"*65537>>}", "cmd", NULL, "too_long"},
    {P, "#{cmd => [<<\"ls\">>, <<\"x\"*65537>>]}", "cmd", NULL, "too_long"},
    {P, "#{cmd => [<<\"x\">>*4097]}", "cmd", NULL, "too_many"},
    {D, "#{image => <<\"a\">>, cmd => 5}", "cmd", NULL, "not_a_list"},
    /* env */
    {P, "#{" CMD ", env => [{<<\"A\">>, <<\"b\">>}]}", "env", NULL, "not_a_map"},
    {P, "#{" CMD ", env => #{<<\"A=B\">> => <<\"c\">>}}", "env", NULL, "invalid_characters"},
    {P, "#{" CMD ", env => #{<<\"=\">> => <<\"c\">>}}", "env", NULL, "invalid_characters"},
    {P, "#{" CMD ", env => #{<<>> => <<\"c\">>}}", "env", NULL, "empty"},
    {P, "#{" CMD ", env => #{'A' => <<\"c\">>}}", "env", NULL, "not_a_string"},
    {P, "#{" CMD ", env => #{1 => <<\"c\">>}}", "env", NULL, "not_a_string"},
    {P, "#{" CMD ", env => #{<<\"A\">> => 1}}", "env", NULL, "not_a_string"},
    {P, "#{" CMD ", env => #{<<\"A\">> => true}}", "env", NULL, "not_a_string"},
    {P, "#{" CMD ", env => #{<<\"A\">> => <<\"x\\0\">>}}", "env", NULL, "contains_nul"},
    {P, "#{" CMD ", env => #{<<\"A\\0\">> => <<\"x\">>}}", "env", NULL, "contains_nul"},
    {P, "#{" CMD ", env => #{<<\"A\">> => <<\"x\"*32769>>}}", "env", NULL, "too_long"},
    {P, "#{" CMD ", env => #{<<\"A\"*32769>> => <<\"x\">>}}", "env", NULL, "too_long"},
    {P, "#{" CMD ", env => #{<<\"A\">> => <<\"b\">>, \"A\" => <<\"c\">>}}", "env", NULL,
     "duplicate_key"},
    /* cwd, workspace */
    {P, "#{" CMD ", cwd => <<>>}", "cwd", NULL, "empty"},
    {P, "#{" CMD ", cwd => 1}", "cwd", NULL, "not_a_string"},
    {P, "#{" CMD ", cwd => tmp}", "cwd", NULL, "not_a_string"},
    {P, "#{" CMD ", cwd => <<\"x\"*4097>>}", "cwd", NULL, "too_long"},
    {P, "#{" CMD ", cwd => <<\"/tmp\\0\">>}", "cwd", NULL, "contains_nul"},
    {P, "#{" CMD ", workspace => <<\"rel/dir\">>}", "workspace", NULL, "not_absolute"},
    {P, "#{" CMD ", workspace => <<>>}", "workspace", NULL, "empty"},
    {P, "#{" CMD ", workspace => #{}}", "workspace", NULL, "not_a_string"},
    {P, "#{" CMD ", workspace => <<\"/\"*4097>>}", "workspace", NULL, "too_long"},
    /* labels */
    {P, "#{" CMD ", labels => []}", "labels", NULL, "not_a_map"},
    {P, "#{" CMD ", labels => [{a, <<\"b\">>}]}", "labels", NULL, "not_a_map"},
    {P, "#{" CMD ", labels => #{1 => <<\"a\">>}}", "labels", NULL, "not_a_string"},
    {P, "#{" CMD ", labels => #{a => b}}", "labels", NULL, "not_a_string"},
    {P, "#{" CMD ", labels => #{a => 1}}", "labels", NULL, "not_a_string"},
    {P, "#{" CMD ", labels => #{<<\"k\"*257>> => <<\"v\">>}}", "labels", NULL, "too_long"},
    {P, "#{" CMD ", labels => #{k => <<\"v\"*257>>}}", "labels", NULL, "too_long"},
    {P, "#{" CMD ", labels => #{'' => <<\"v\">>}}", "labels", NULL, "empty"},
    {P, "#{" CMD ", labels => #{k => <<\"\\0\">>}}", "labels", NULL, "contains_nul"},
    {P, "#{" CMD ", labels => #{a => <<\"1\">>, <<\"a\">> => <<\"2\">>}}", "labels", NULL,
     "duplicate_key"},
    /* numbers */
    {P, "#{" CMD ", memory_mb => 3}", "memory_mb", NULL, "out_of_range"},
    {P, "#{" CMD ", memory_mb => <<\"512\">>}", "memory_mb", NULL, "not_an_integer"},
    {P, "#{" CMD ", memory_mb => 512.0}", "memory_mb", NULL, "not_an_integer"},
    {P, "#{" CMD ", memory_mb => 100000000000000000000000}", "memory_mb", NULL, "out_of_range"},
    {P, "#{" CMD ", cpus => 0}", "cpus", NULL, "out_of_range"},
    {P, "#{" CMD ", cpus => -1.5}", "cpus", NULL, "out_of_range"},
    {P, "#{" CMD ", cpus => two}", "cpus", NULL, "not_a_number"},
    {P, "#{" CMD ", pids_limit => 0}", "pids_limit", NULL, "out_of_range"},
    {P, "#{" CMD ", ttl_ms => -1}", "ttl_ms", NULL, "out_of_range"},
    {P, "#{" CMD ", ttl_ms => 315576000000001}", "ttl_ms", NULL, "out_of_range"},
    {P, "#{" CMD ", max_restarts => -1}", "max_restarts", NULL, "out_of_range"},
    {P, "#{" CMD ", metrics_interval_ms => 99}", "metrics_interval_ms", NULL, "out_of_range"},
    /* owner */
    {P, "#{" CMD ", owner => self}", "owner", NULL, "not_a_pid"},
    {P, "#{" CMD ", owner => <<\"<0.1.0>\">>}", "owner", NULL, "not_a_pid"},
    {P, "#{" CMD ", owner => @ref}", "owner", NULL, "not_a_pid"},
    {P, "#{" CMD ", owner => [@pid]}", "owner", NULL, "not_a_pid"},
    /* enums */
    {P, "#{" CMD ", restart => sometimes}", "restart", NULL, "unknown_value"},
    {P, "#{" CMD ", restart => \"always\"}", "restart", NULL, "unknown_value"},
    {P, "#{" CMD ", restart => 1}", "restart", NULL, "unknown_value"},
    {P, "#{" CMD ", restart => 'Always'}", "restart", NULL, "unknown_value"},
    {P, "#{" CMD ", isolation => full}", "isolation", NULL, "unknown_value"},
    {P, "#{" CMD ", isolation => true}", "isolation", NULL, "unknown_value"},
    /* user */
    {P, "#{" CMD ", user => -1}", "user", NULL, "out_of_range"},
    {P, "#{" CMD ", user => 4294967295}", "user", NULL, "out_of_range"},
    {P, "#{" CMD ", user => <<>>}", "user", NULL, "empty"},
    {P, "#{" CMD ", user => root}", "user", NULL, "not_a_string"},
    {P, "#{" CMD ", user => 1.0}", "user", NULL, "not_a_string"},
    {P, "#{" CMD ", user => <<\"u\"*257>>}", "user", NULL, "too_long"},
    {P, "#{" CMD ", user => <<\"ro\\0ot\">>}", "user", NULL, "contains_nul"},
    /* health checks */
    {P, HC(""), "type", NULL, "missing"},
    {P, "#{" CMD ", health_check => []}", "health_check", NULL, "not_a_map"},
    {P, "#{" CMD ", health_check => tcp}", "health_check", NULL, "not_a_map"},
    {P, HC("type => udp"), "type", NULL, "unknown_value"},
    {P, HC("type => 1"), "type", NULL, "unknown_value"},
    {P, HC("type => tcp"), "port", NULL, "missing"},
    {P, HC("type => http"), "port", NULL, "missing"},
    {P, HC("type => tcp, port => 0"), "port", NULL, "out_of_range"},
    {P, HC("type => tcp, port => 65536"), "port", NULL, "out_of_range"},
    {P, HC("type => tcp, port => <<\"80\">>"), "port", NULL, "not_an_integer"},
    {P, HC("type => http, port => 80, path => <<\"health\">>"), "path", NULL, "not_absolute"},
    {P, HC("type => http, port => 80, path => <<>>"), "path", NULL, "empty"},
    {P, HC("type => http, port => 80, path => 5"), "path", NULL, "not_a_string"},
    {P, HC("type => http, port => 80, path => <<\"/\\0\">>"), "path", NULL, "contains_nul"},
    {P, HC("type => http, port => 80, status => 99"), "status", NULL, "out_of_range"},
    {P, HC("type => http, port => 80, status => 600"), "status", NULL, "out_of_range"},
    {P, HC("type => http, port => 80, status => ok"), "status", NULL, "not_an_integer"},
    {P, HC("type => exec"), "cmd", NULL, "missing"},
    {P, HC("type => exec, cmd => []"), "cmd", NULL, "empty"},
    {P, HC("type => exec, cmd => [<<\"a\">> | b]"), "cmd", NULL, "not_a_list"},
    {P, HC("type => tcp, port => 80, timeout_ms => 0"), "timeout_ms", NULL, "out_of_range"},
    {P, HC("type => tcp, port => 80, timeout_ms => 86400001"), "timeout_ms", NULL,
     "out_of_range"},
    {P, HC("type => tcp, port => 80, interval_ms => 9"), "interval_ms", NULL, "out_of_range"},
    {P, HC("type => tcp, port => 80, interval_ms => 60001"), "interval_ms", NULL,
     "out_of_range"},
    {P, HC("type => exec, cmd => [<<\"a\">>], interval_ms => 1.5"), "interval_ms", NULL,
     "not_an_integer"},
    {P, HC("type => tcp, port => 80, path => <<\"/\">>"), NULL, "path", "unknown_key"},
    {P, HC("type => tcp, port => 80, cmd => <<\"x\">>"), NULL, "cmd", "unknown_key"},
    {P, HC("type => exec, cmd => <<\"x\">>, port => 80"), NULL, "port", "unknown_key"},
    {P, HC("type => tcp, port => 80, foo => 1"), NULL, "foo", "unknown_key"},
    {P, HC("type => tcp, port => 80, <<\"bar\">> => 1"), NULL, "<<\"bar\">>", "unknown_key"},
    {P, HC("type => tcp, port => 80, <<\"port\">> => 81"), NULL, "<<\"port\">>",
     "duplicate_key"},
    {P, HC("type => tcp, port => 80, 1 => 2"), "health_check", NULL, "bad_key"},
    /* docker, beam_node, vm keys */
    {D, "#{image => <<>>}", "image", NULL, "empty"},
    {D, "#{image => 5}", "image", NULL, "not_a_string"},
    {D, "#{image => <<\"a\">>, isolation => none}", NULL, "isolation", "unknown_key"},
    {D, "#{image => <<\"a\">>, user => <<\"u\">>}", NULL, "user", "unknown_key"},
    {D, "#{image => <<\"a\">>, kernel => <<\"k\">>}", NULL, "kernel", "unknown_key"},
    {V, "#{kernel => <<\"k\">>}", NULL, "kernel", "unknown_key"},
    {V, "#{memory_mb => 1, cpus => 1}", "memory_mb", NULL, "out_of_range"},
    {V, "#{accel => hvf}", "accel", NULL, "unknown_value"},
    {V, "#{network => bridge}", "network", NULL, "unknown_value"},
    {V, "#{ports => [{8080, 80}]}", "ports", NULL, "needs_network_user"},
    {V, "#{network => user, ports => [{0, 80}]}", "ports", NULL, "out_of_range"},
    {V, "#{network => user, ports => [#{host => 80}]}", "ports", NULL, "missing"},
    {V, "#{boot_timeout_ms => 1}", "boot_timeout_ms", NULL, "out_of_range"},
    {V, "#{cpus => 1.5}", "cpus", NULL, "out_of_range"},
    {V, "#{memory_mb => 1048576}", "memory_mb", NULL, "more_than_host_memory"},
    {V, "#{image => other}", "image", NULL, "unknown_value"},
    {V, "#{image => #{kernel => <<\"vmlinuz\">>}}", "kernel", NULL, "not_absolute"},
    {V, "#{image => #{kernel => <<\"/no/such/vmlinuz\">>}}", "kernel", NULL, "no_such_file"},
    {V, "#{image => #{disk => <<\"/etc\">>}}", "disk", NULL, "not_a_regular_file"},
    {V, "#{image => #{initrd => <<\"/etc/passwd\">>}}", "initrd", NULL, "needs_kernel"},
    {V, "#{image => #{format => qcow3}}", "format", NULL, "unknown_value"},
    {D, "#{image => <<\"a\">>, pull => sometimes}", "pull", NULL, "unknown_value"},
    {D, "#{image => <<\"a\">>, ports => 80}", "ports", NULL, "not_a_list"},
    {D, "#{image => <<\"a\">>, ports => [80]}", "ports", NULL, "unknown_value"},
    {D, "#{image => <<\"a\">>, ports => [{1, 2, 3}]}", "ports", NULL, "unknown_value"},
    {D, "#{image => <<\"a\">>, ports => [{1, 2} | x]}", "ports", NULL, "not_a_list"},
    {D, "#{image => <<\"a\">>, volumes => <<\"/a:/b\">>}", "volumes", NULL, "not_a_list"},
    {D, "#{image => <<\"a\">>, ports => [{70000, 2}]}", "ports", NULL, "out_of_range"},
    {D, "#{image => <<\"a\">>, ports => [#{host => 80}]}", "ports", NULL, "missing"},
    {D, "#{image => <<\"a\">>, ports => [#{container => 1, protocol => sctp}]}", "ports", NULL,
     "unknown_value"},
    {D, "#{image => <<\"a\">>, volumes => [<<\"rel:/b\">>]}", "volumes", NULL, "not_absolute"},
    {D, "#{image => <<\"a\">>, volumes => [{<<\"/a\">>, <<\"b\">>}]}", "volumes", NULL,
     "not_absolute"},
    {D, "#{image => <<\"a\">>, beam => #{name => 'n@h'}}", "cookie", NULL, "missing"},
    {D, "#{image => <<\"a\">>, beam => #{name => n, cookie => c}}", "name", NULL,
     "invalid_characters"},
    {D, "#{image => <<\"a\">>, network => 5}", "network", NULL, "not_a_string"},
    {B, "#{code_paths => <<\"ebin\">>}", "code_paths", NULL, "not_a_list"},
    {B, "#{code_paths => \"ebin\"}", "code_paths", NULL, "not_a_string"},
    {B, "#{code_paths => [<<\"a\">> | b]}", "code_paths", NULL, "not_a_list"},
    {B, "#{apps => [1]}", "apps", NULL, "not_a_string"},
    {B, "#{apps => crypto}", "apps", NULL, "not_a_list"},
    {B, "#{cookie => <<>>}", "cookie", NULL, "empty"},
    {B, "#{name => 5}", "name", NULL, "not_a_string"},
    {B, "#{erl_args => 5}", "erl_args", NULL, "not_a_list"},
    {B, "#{image => <<\"a\">>}", NULL, "image", "unknown_key"},
    {B, "#{isolation => none}", NULL, "isolation", "unknown_key"},
    /* several allocated fields, then a bad one: nothing may leak */
    {P, "#{cmd => [<<\"a\">>, <<\"b\">>], env => #{<<\"A\">> => <<\"1\">>}, cwd => <<\"/\">>,"
        " labels => #{a => <<\"b\">>}, owner => @pid, user => <<\"u\">>,"
        " health_check => #{type => exec, cmd => [<<\"x\">>]}, workspace => <<\"rel\">>}",
     "workspace", NULL, "not_absolute"},
    {P, "#{cmd => [<<\"a\">>], health_check => #{type => exec, cmd => [<<\"x\">>],"
        " interval_ms => 1}}",
     "interval_ms", NULL, "out_of_range"},
    {P, "#{cmd => [<<\"a\">>], health_check => #{type => http, port => 1, path => <<\"/x\">>,"
        " status => 1}}",
     "status", NULL, "out_of_range"},
    {P, "#{cmd => [<<\"a\">>, <<\"b\">>, <<\"c\">>, 5]}", "cmd", NULL, "not_a_string"},
};

static void test_config_bad_table(void **state) {
    (void)state;
    size_t n = sizeof BAD_CONFIGS / sizeof BAD_CONFIGS[0];
    assert_true(n >= 60);
    for (size_t r = 0; r < n; r++) {
        const struct bad_config *b = &BAD_CONFIGS[r];
        struct term t = T(b->text);
        struct sbx_config c;
        struct sbx_badarg e;
        if (cfg_t(t, b->type, &c, &e) != -1) {
            sbx_config_free(&c);
            fail_msg("row %zu accepted: %s", r, b->text);
        }
        if (b->key != NULL) {
            assert_err_key(&e, t, b->key, b->why);
        } else if (e.field == NULL || strcmp(e.field, b->field) != 0 ||
                   strcmp(e.why, b->why) != 0 || e.field_term != NULL) {
            fail_msg("row %zu %s: expected {%s, %s}, got {%s, %s}", r, b->text, b->field,
                     b->why, e.field ? e.field : "NULL", e.why);
        }
    }
    print_message("%zu malformed configs refused\n", n);
}

/* ---- exec options -------------------------------------------------------------------- */

static int exec_t(struct term t, struct sbx_exec_opts *o, struct sbx_badarg *e) {
    int idx = 0;
    clear_err(e);
    memset(o, 0xA5, sizeof *o);
    int rc = sbx_exec_opts_decode(t.buf, &idx, o, e);
    if (rc == 0) {
        assert_int_equal(idx, t.len);
    } else {
        assert_int_equal(rc, -1);
        assert_int_equal(idx, 0);
        assert_true(all_zero(o, sizeof *o));
    }
    return rc;
}

static void test_exec_opts_ok(void **state) {
    (void)state;
    struct sbx_exec_opts o;
    struct sbx_badarg e;
    memset(&o, 0xA5, sizeof o);
    assert_int_equal(sbx_exec_opts_decode(NULL, NULL, &o, &e), 0);
    assert_int_equal(o.timeout_ms, 30000);
    assert_int_equal(o.max_output_bytes, 1024 * 1024);
    assert_int_equal(o.env.n, 0);
    assert_null(o.cwd);
    assert_null(o.stdin_data);
    sbx_exec_opts_free(&o);

    assert_int_equal(exec_t(T("#{}"), &o, &e), 0);
    assert_int_equal(o.timeout_ms, 30000);
    assert_int_equal(o.max_output_bytes, 1024 * 1024);
    assert_null(o.stdin_data);
    sbx_exec_opts_free(&o);

    assert_int_equal(exec_t(T("#{timeout_ms => 86400000, env => #{<<\"A\">> => \"b\"},"
                              " cwd => <<\"sub/dir\">>, stdin => <<\"a\\0b\\n\">>,"
                              " max_output_bytes => 268435456}"),
                            &o, &e),
                     0);
    assert_int_equal(o.timeout_ms, 86400000);
    assert_int_equal(o.env.n, 1);
    assert_string_equal(kv_get(&o.env, "A"), "b");
    assert_string_equal(o.cwd, "sub/dir");
    assert_int_equal(o.stdin_len, 4);
    assert_memory_equal(o.stdin_data, "a\0b\n", 4);
    assert_int_equal(o.max_output_bytes, 268435456);
    sbx_exec_opts_free(&o);
    assert_true(all_zero(&o, sizeof o));
    sbx_exec_opts_free(&o);
    sbx_exec_opts_free(NULL);

    assert_int_equal(exec_t(T("#{<<\"stdin\">> => \"h\xc3\xa9\", <<\"timeout_ms\">> => 1,"
                              " max_output_bytes => 0}"),
                            &o, &e),
                     0);
    assert_int_equal(o.stdin_len, 3);
    assert_memory_equal(o.stdin_data, "h\xc3\xa9", 3);
    assert_int_equal(o.timeout_ms, 1);
    assert_int_equal(o.max_output_bytes, 0);
    sbx_exec_opts_free(&o);

    /* Empty input is input: stdin_data is set, of length 0. */
    assert_int_equal(exec_t(T("#{stdin => <<>>}"), &o, &e), 0);
    assert_non_null(o.stdin_data);
    assert_int_equal(o.stdin_len, 0);
    sbx_exec_opts_free(&o);
    assert_int_equal(exec_t(T("#{stdin => []}"), &o, &e), 0);
    assert_non_null(o.stdin_data);
    assert_int_equal(o.stdin_len, 0);
    sbx_exec_opts_free(&o);
    assert_int_equal(exec_t(T("#{stdin => [0, 1, 255]}"), &o, &e), 0);
    assert_int_equal(o.stdin_len, 4);
    assert_memory_equal(o.stdin_data, "\0\1\xc3\xbf", 4);
    sbx_exec_opts_free(&o);
}

static void test_exec_opts_errors(void **state) {
    (void)state;
    static const struct {
        const char *text, *field, *key, *why;
    } rows[] = {
        {"[]", "opts", NULL, "not_a_map"},
        {"[{timeout_ms, 5}]", "opts", NULL, "not_a_map"},
        {"#{1 => 2}", "opts", NULL, "bad_key"},
        {"#{foo => 1}", NULL, "foo", "unknown_key"},
        {"#{<<\"foo\">> => 1}", NULL, "<<\"foo\">>", "unknown_key"},
        {"#{timeout => 1}", NULL, "timeout", "unknown_key"},
        {"#{timeout_ms => 1, <<\"timeout_ms\">> => 2}", NULL, "<<\"timeout_ms\">>",
         "duplicate_key"},
        {"#{timeout_ms => 0}", "timeout_ms", NULL, "out_of_range"},
        {"#{timeout_ms => -5}", "timeout_ms", NULL, "out_of_range"},
        {"#{timeout_ms => 86400001}", "timeout_ms", NULL, "out_of_range"},
        {"#{timeout_ms => infinity}", "timeout_ms", NULL, "not_an_integer"},
        {"#{timeout_ms => 1.0e3}", "timeout_ms", NULL, "not_an_integer"},
        {"#{max_output_bytes => -1}", "max_output_bytes", NULL, "out_of_range"},
        {"#{max_output_bytes => 268435457}", "max_output_bytes", NULL, "out_of_range"},
        {"#{max_output_bytes => <<\"1\">>}", "max_output_bytes", NULL, "not_an_integer"},
        {"#{stdin => data}", "stdin", NULL, "not_a_string"},
        {"#{stdin => [<<\"a\">>, <<\"b\">>]}", "stdin", NULL, "not_a_string"},
        {"#{stdin => [97 | <<\"b\">>]}", "stdin", NULL, "not_a_string"},
        {"#{stdin => 5}", "stdin", NULL, "not_a_string"},
        {"#{stdin => @bits}", "stdin", NULL, "not_a_string"},
        {"#{env => []}", "env", NULL, "not_a_map"},
        {"#{env => #{<<\"A=\">> => <<\"b\">>}}", "env", NULL, "invalid_characters"},
        {"#{cwd => <<>>}", "cwd", NULL, "empty"},
        {"#{cwd => <<\"a\\0\">>}", "cwd", NULL, "contains_nul"},
        {"#{env => #{<<\"A\">> => <<\"1\">>}, cwd => <<\"/x\">>, stdin => <<\"in\">>,"
         " max_output_bytes => -1}",
         "max_output_bytes", NULL, "out_of_range"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct term t = T(rows[r].text);
        struct sbx_exec_opts o;
        struct sbx_badarg e;
        if (exec_t(t, &o, &e) != -1)
            fail_msg("exec opts %s accepted", rows[r].text);
        if (rows[r].key != NULL)
            assert_err_key(&e, t, rows[r].key, rows[r].why);
        else
            assert_err(&e, rows[r].field, rows[r].why);
    }
}

/* ---- list filters -------------------------------------------------------------------- */

static void test_list_filter(void **state) {
    (void)state;
    struct sbx_list_filter f;
    struct sbx_badarg e;
    assert_int_equal(sbx_list_filter_decode(NULL, NULL, &f, &e), 0);
    assert_int_equal(f.has_type, 0);
    assert_int_equal(f.status, -1);
    assert_int_equal(f.labels.n, 0);
    sbx_list_filter_free(&f);

    static const char *const statuses[] = {"starting", "running", "paused", "stopping",
                                           "stopped",  "exited",  "error"};
    for (int s = 0; s < 7; s++) {
        struct term t = Tf("#{status => %s}", statuses[s]);
        int idx = 0;
        assert_int_equal(sbx_list_filter_decode(t.buf, &idx, &f, &e), 0);
        assert_int_equal(idx, t.len);
        assert_int_equal(f.status, s);
        assert_int_equal(f.has_type, 0);
        sbx_list_filter_free(&f);
    }
    struct term t = T("#{<<\"type\">> => docker, status => <<\"exited\">>,"
                      " labels => #{team => <<\"core\">>, <<\"app\">> => \"web\"}}");
    int idx = 0;
    assert_int_equal(sbx_list_filter_decode(t.buf, &idx, &f, &e), 0);
    assert_int_equal(idx, t.len);
    assert_int_equal(f.has_type, 1);
    assert_int_equal(f.type, SBX_TYPE_DOCKER);
    assert_int_equal(f.status, 5); /* exited */
    assert_int_equal(f.labels.n, 2);
    assert_string_equal(kv_get(&f.labels, "team"), "core");
    assert_string_equal(kv_get(&f.labels, "app"), "web");
    sbx_list_filter_free(&f);
    assert_true(all_zero(&f, sizeof f));
    sbx_list_filter_free(NULL);

    t = T("#{}");
    idx = 0;
    assert_int_equal(sbx_list_filter_decode(t.buf, &idx, &f, &e), 0);
    assert_int_equal(f.status, -1);
    sbx_list_filter_free(&f);

    static const struct {
        const char *text, *field, *key, *why;
    } rows[] = {
        {"[]", "filter", NULL, "not_a_map"},
        {"all", "filter", NULL, "not_a_map"},
        {"#{1 => 2}", "filter", NULL, "bad_key"},
        {"#{id => <<\"a\">>}", NULL, "id", "unknown_key"},
        {"#{<<\"owner\">> => 1}", NULL, "<<\"owner\">>", "unknown_key"},
        {"#{type => container}", "type", NULL, "unknown_value"},
        {"#{status => up}", "status", NULL, "unknown_value"},
        {"#{status => 1}", "status", NULL, "unknown_value"},
        {"#{labels => [a]}", "labels", NULL, "not_a_map"},
        {"#{labels => #{a => 1}}", "labels", NULL, "not_a_string"},
        {"#{labels => #{a => <<\"b\">>}, status => nope}", "status", NULL, "unknown_value"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        t = T(rows[r].text);
        idx = 0;
        clear_err(&e);
        memset(&f, 0xA5, sizeof f);
        if (sbx_list_filter_decode(t.buf, &idx, &f, &e) != -1)
            fail_msg("filter %s accepted", rows[r].text);
        assert_int_equal(idx, 0);
        assert_true(all_zero(&f, sizeof f));
        if (rows[r].key != NULL)
            assert_err_key(&e, t, rows[r].key, rows[r].why);
        else
            assert_err(&e, rows[r].field, rows[r].why);
    }
}

/* ---- log options --------------------------------------------------------------------- */

static void test_logs_opts(void **state) {
    (void)state;
    struct sbx_logs_opts o;
    struct sbx_badarg e;
    assert_int_equal(sbx_logs_opts_decode(NULL, NULL, &o, &e), 0);
    assert_int_equal(o.tail, 100);
    assert_int_equal(o.since, 0);

    static const struct {
        const char *text;
        size_t tail;
        int64_t since;
    } good[] = {
        {"#{}", 100, 0},
        {"#{tail => 0}", 0, 0},
        {"#{tail => 100000}", 100000, 0},
        {"#{<<\"since\">> => 1700000000000}", 100, 1700000000000},
        {"#{since => 0, tail => 5}", 5, 0},
        {"#{since => 9223372036854775807}", 100, INT64_MAX},
    };
    for (size_t r = 0; r < sizeof good / sizeof good[0]; r++) {
        struct term t = T(good[r].text);
        int idx = 0;
        assert_int_equal(sbx_logs_opts_decode(t.buf, &idx, &o, &e), 0);
        assert_int_equal(idx, t.len);
        assert_int_equal(o.tail, good[r].tail);
        assert_int_equal(o.since, good[r].since);
    }

    static const struct {
        const char *text, *field, *key, *why;
    } rows[] = {
        {"[]", "opts", NULL, "not_a_map"},
        {"[{tail, 5}]", "opts", NULL, "not_a_map"},
        {"#{\"tail\" => 5}", "opts", NULL, "bad_key"},
        {"#{follow => true}", NULL, "follow", "unknown_key"},
        {"#{<<\"lines\">> => 5}", NULL, "<<\"lines\">>", "unknown_key"},
        {"#{tail => -1}", "tail", NULL, "out_of_range"},
        {"#{tail => 100001}", "tail", NULL, "out_of_range"},
        {"#{tail => all}", "tail", NULL, "not_an_integer"},
        {"#{since => -1}", "since", NULL, "out_of_range"},
        {"#{since => 9223372036854775808}", "since", NULL, "out_of_range"},
        {"#{since => 1.0}", "since", NULL, "not_an_integer"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct term t = T(rows[r].text);
        int idx = 0;
        clear_err(&e);
        memset(&o, 0xA5, sizeof o);
        if (sbx_logs_opts_decode(t.buf, &idx, &o, &e) != -1)
            fail_msg("logs opts %s accepted", rows[r].text);
        assert_int_equal(idx, 0);
        assert_true(all_zero(&o, sizeof o));
        if (rows[r].key != NULL)
            assert_err_key(&e, t, rows[r].key, rows[r].why);
        else
            assert_err(&e, rows[r].field, rows[r].why);
    }
}

/* ---- topics -------------------------------------------------------------------------- */

static void test_topics(void **state) {
    (void)state;
    static const struct {
        const char *text;
        unsigned bits;
        const char *why; /* NULL: accepted */
    } rows[] = {
        {"[status]", 1u << SBX_TOPIC_STATUS, NULL},
        {"[log]", 1u << SBX_TOPIC_LOG, NULL},
        {"[metrics]", 1u << SBX_TOPIC_METRICS, NULL},
        {"[processes]", 1u << SBX_TOPIC_PROCESSES, NULL},
        {"[trace]", 1u << SBX_TOPIC_TRACE, NULL},
        {"[status, log, metrics, processes, trace]", 0x1F, NULL},
        {"[log, log, status]", (1u << SBX_TOPIC_LOG) | 1u, NULL},
        {"[<<\"metrics\">>, @latin1'trace']", (1u << SBX_TOPIC_METRICS) | (1u << SBX_TOPIC_TRACE),
         NULL},
        {"[]", 0, "empty"},
        {"status", 0, "not_a_list"},
        {"#{}", 0, "not_a_list"},
        {"<<\"status\">>", 0, "not_a_list"},
        {"[status | log]", 0, "not_a_list"},
        {"[foo]", 0, "unknown_value"},
        {"[status, foo]", 0, "unknown_value"},
        {"[1]", 0, "unknown_value"},
        {"[\"status\"]", 0, "unknown_value"},
        {"\"status\"", 0, "unknown_value"},
        {"[{status}]", 0, "unknown_value"},
        {"['Status']", 0, "unknown_value"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct term t = T(rows[r].text);
        unsigned bits = 0xFFu;
        struct sbx_badarg e;
        int idx = 0;
        clear_err(&e);
        int rc = sbx_decode_topics(t.buf, &idx, &bits, &e);
        if (rows[r].why == NULL) {
            if (rc != 0)
                fail_msg("topics %s refused: %s", rows[r].text, e.why);
            assert_int_equal(bits, rows[r].bits);
            assert_int_equal(idx, t.len);
        } else {
            if (rc != -1)
                fail_msg("topics %s accepted", rows[r].text);
            assert_int_equal(bits, 0);
            assert_int_equal(idx, 0);
            assert_err(&e, "topics", rows[r].why);
        }
    }
}

/* ---- relative paths ------------------------------------------------------------------ */

static void test_rel_path(void **state) {
    (void)state;
    static const struct {
        const char *text, *want, *why;
    } rows[] = {
        {"<<\"a\">>", "a", NULL},
        {"<<\"a/b/c.txt\">>", "a/b/c.txt", NULL},
        {"<<\"./a//b/\">>", "a/b", NULL},
        {"<<\"a/./b/.\">>", "a/b", NULL},
        {"\"dir/f\xc3\xa9\"", "dir/f\xc3\xa9", NULL},
        {"<<\"...\">>", "...", NULL},
        {"<<\"..a/b..\">>", "..a/b..", NULL},
        {"<<\".hidden\">>", ".hidden", NULL},
        {"<<\"x\"*1024>>", NULL, NULL},
        {"<<\"/etc/passwd\">>", NULL, "absolute"},
        {"<<\"/\">>", NULL, "absolute"},
        {"<<\"..\">>", NULL, "dot_dot"},
        {"<<\"../x\">>", NULL, "dot_dot"},
        {"<<\"a/../b\">>", NULL, "dot_dot"},
        {"<<\"a/..\">>", NULL, "dot_dot"},
        {"<<\"a//../b\">>", NULL, "dot_dot"},
        {"\"../x\"", NULL, "dot_dot"},
        {"<<>>", NULL, "empty"},
        {"[]", NULL, "empty"},
        {"<<\".\">>", NULL, "empty"},
        {"<<\"./\">>", NULL, "empty"},
        {"<<\".//./\">>", NULL, "empty"},
        {"<<\"a\\0b\">>", NULL, "contains_nul"},
        {"<<\"x\"*1025>>", NULL, "too_long"},
        {"\"x\"*1025", NULL, "too_long"},
        {"file", NULL, "not_a_string"},
        {"42", NULL, "not_a_string"},
        {"[<<\"a\">>, <<\"b\">>]", NULL, "not_a_string"},
        {"@bits", NULL, "not_a_string"},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        struct term t = T(rows[r].text);
        char out[1100];
        struct sbx_badarg e;
        int idx = 0;
        memset(out, 'Z', sizeof out);
        clear_err(&e);
        int rc = sbx_decode_rel_path(t.buf, &idx, out, sizeof out, &e);
        if (rows[r].why == NULL) {
            if (rc != 0)
                fail_msg("path %s refused: %s", rows[r].text, e.why);
            assert_int_equal(idx, t.len);
            if (rows[r].want != NULL)
                assert_string_equal(out, rows[r].want);
            else
                assert_int_equal(strlen(out), 1024);
        } else {
            if (rc != -1)
                fail_msg("path %s accepted as %s", rows[r].text, out);
            assert_int_equal(idx, 0);
            assert_int_equal(out[0], '\0');
            assert_err(&e, "path", rows[r].why);
        }
    }

    /* The caller's buffer bounds the normalised path. */
    struct term t = T("<<\"./abcd//\">>");
    char small[5];
    struct sbx_badarg e;
    int idx = 0;
    assert_int_equal(sbx_decode_rel_path(t.buf, &idx, small, sizeof small, &e), 0);
    assert_string_equal(small, "abcd");
    char tiny[4];
    idx = 0;
    assert_int_equal(sbx_decode_rel_path(t.buf, &idx, tiny, sizeof tiny, &e), -1);
    assert_err(&e, "path", "too_long");
    assert_int_equal(idx, 0);
}

/* ---- the term text itself ------------------------------------------------------------ */

/* The notation above must produce what Erlang would send. */
static void test_term_text(void **state) {
    (void)state;
    struct term t = T("\"ab\"");
    assert_int_equal(t.len, 5);
    assert_int_equal((unsigned char)t.buf[0], ERL_STRING_EXT);
    t = T("[97, 98]");
    assert_int_equal((unsigned char)t.buf[0], ERL_LIST_EXT);
    t = T("\"\xe2\x82\xac\"");
    assert_int_equal((unsigned char)t.buf[0], ERL_LIST_EXT);
    t = T("100000000000000000000");
    assert_int_equal((unsigned char)t.buf[0], ERL_SMALL_BIG_EXT);
    t = T("@pid");
    assert_int_equal((unsigned char)t.buf[0], ERL_NEW_PID_EXT);
    t = T("@oldpid");
    assert_int_equal((unsigned char)t.buf[0], ERL_PID_EXT);
    t = T("@latin1'a'");
    assert_int_equal((unsigned char)t.buf[0], ERL_SMALL_ATOM_EXT);
    t = T("@atom_d'a'");
    assert_int_equal((unsigned char)t.buf[0], ERL_ATOM_EXT);
    t = T("@atom_v'a'");
    assert_int_equal((unsigned char)t.buf[0], ERL_ATOM_UTF8_EXT);
    t = T("a");
    assert_int_equal((unsigned char)t.buf[0], ERL_SMALL_ATOM_UTF8_EXT);
    t = T("[a | b]");
    assert_int_equal(t.len, 5 + 3 + 3);
    t = T("[<<\"ab\"*3>>*2]");
    assert_int_equal(t.len, 5 + 2 * (5 + 6) + 1);
}

int main(void) {
    ei_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_term_text, free_arena),
        cmocka_unit_test_teardown(test_id_ok, free_arena),
        cmocka_unit_test_teardown(test_id_errors, free_arena),
        cmocka_unit_test_teardown(test_type, free_arena),
        cmocka_unit_test_teardown(test_cmd_ok, free_arena),
        cmocka_unit_test_teardown(test_cmd_errors, free_arena),
        cmocka_unit_test_teardown(test_config_defaults, free_arena),
        cmocka_unit_test_teardown(test_config_every_key, free_arena),
        cmocka_unit_test_teardown(test_config_binary_keys, free_arena),
        cmocka_unit_test_teardown(test_config_enums, free_arena),
        cmocka_unit_test_teardown(test_config_user, free_arena),
        cmocka_unit_test_teardown(test_config_cpus, free_arena),
        cmocka_unit_test_teardown(test_config_integer_bounds, free_arena),
        cmocka_unit_test_teardown(test_config_labels, free_arena),
        cmocka_unit_test_teardown(test_config_env, free_arena),
        cmocka_unit_test_teardown(test_config_health_checks, free_arena),
        cmocka_unit_test_teardown(test_config_other_types, free_arena),
        cmocka_unit_test_teardown(test_config_at_offset, free_arena),
        cmocka_unit_test_teardown(test_config_bad_table, free_arena),
        cmocka_unit_test_teardown(test_exec_opts_ok, free_arena),
        cmocka_unit_test_teardown(test_exec_opts_errors, free_arena),
        cmocka_unit_test_teardown(test_list_filter, free_arena),
        cmocka_unit_test_teardown(test_logs_opts, free_arena),
        cmocka_unit_test_teardown(test_topics, free_arena),
        cmocka_unit_test_teardown(test_rel_path, free_arena),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
