/* Decoding and validating caller arguments (core/config.h).
 *
 * Every input has already been walked by dist/term_check.c, so the raw tag bytes can be
 * read and ei's decoders and ei_skip_term used without further bounds checks. Each public
 * decoder builds into a local value and hands it over only on success; on failure one
 * cleanup path frees whatever had been built and the caller's *out is left zeroed and
 * *idx untouched.
 *
 * Strings: a binary (bytes as they are), a charlist (a STRING_EXT or a proper list of
 * code points, stored UTF-8 encoded) and, where said, an atom (stored UTF-8 encoded).
 * Lengths are counted in bytes after that encoding. */
#include "core/config.h"

#include <ctype.h>
#include <ei.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- limits -------------------------------------------------------------------------- */

#define CMD_ARG_MAX     (64u * 1024u)  /* each argv element, and a shell command */
#define CMD_ARGC_MAX    4096u          /* argv elements */
#define ENV_STR_MAX     (32u * 1024u)  /* each env key and value */
#define ENV_COUNT_MAX   4096u          /* env entries */
#define PATH_LEN_MAX    4096u          /* cwd, workspace, http path, backend paths */
#define LABEL_STR_MAX   256u           /* each label key and value */
#define LABEL_COUNT_MAX 64u            /* labels */
#define USER_LEN_MAX    256u           /* a user name */
#define NAME_LEN_MAX    255u           /* node names, cookies, docker networks */
#define STDIN_LEN_MAX   (64u * 1024u * 1024u) /* exec stdin */
#define REL_PATH_MAX    1024u          /* copy_to / copy_from paths */
#define KEY_NAME_CAP    32             /* longer than every key or enum name we know */

#define DAY_MS          86400000LL
#define TTL_MS_MAX      (3653LL * DAY_MS) /* ten years, leap days included */
#define UID_MAX_VALUE   4294967294LL      /* (uid_t)-1 means "no change" to the kernel */
#define OUTPUT_MAX      (256LL * 1024 * 1024)

/* ---- why atoms ----------------------------------------------------------------------- */

static const char WHY_NOT_AN_INTEGER[] = "not_an_integer";
static const char WHY_NOT_A_NUMBER[] = "not_a_number";
static const char WHY_OUT_OF_RANGE[] = "out_of_range";
static const char WHY_NOT_A_STRING[] = "not_a_string";
static const char WHY_NOT_A_MAP[] = "not_a_map";
static const char WHY_NOT_A_LIST[] = "not_a_list";
static const char WHY_NOT_A_PID[] = "not_a_pid";
static const char WHY_UNKNOWN_VALUE[] = "unknown_value";
static const char WHY_MISSING[] = "missing";
static const char WHY_UNKNOWN_KEY[] = "unknown_key";
static const char WHY_DUPLICATE_KEY[] = "duplicate_key";
static const char WHY_BAD_KEY[] = "bad_key";
static const char WHY_TOO_LONG[] = "too_long";
static const char WHY_TOO_MANY[] = "too_many";
static const char WHY_CONTAINS_NUL[] = "contains_nul";
static const char WHY_EMPTY[] = "empty";
static const char WHY_INVALID_CHARACTERS[] = "invalid_characters";
static const char WHY_NOT_ABSOLUTE[] = "not_absolute";
static const char WHY_ABSOLUTE[] = "absolute";
static const char WHY_DOT_DOT[] = "dot_dot";
static const char WHY_NO_MEMORY[] = "no_memory";

/* ---- small helpers ------------------------------------------------------------------- */

/* Borrows nothing, owns nothing: the tag byte of the term at idx. */
static unsigned char tag_at(const char *buf, int idx) { return (unsigned char)buf[idx]; }

/* Borrows p: a big-endian 16-bit length. */
static size_t be16_at(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (size_t)u[0] << 8 | u[1];
}

/* Borrows p: a big-endian 32-bit length. */
static size_t be32_at(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (size_t)u[0] << 24 | (size_t)u[1] << 16 | (size_t)u[2] << 8 | u[3];
}

/* Owns nothing: is t an integer tag (small, 32-bit or big)? */
static int is_int_tag(unsigned char t) {
    return t == ERL_SMALL_INTEGER_EXT || t == ERL_INTEGER_EXT || t == ERL_SMALL_BIG_EXT ||
           t == ERL_LARGE_BIG_EXT;
}

/* err is the caller's; field and why are static strings. */
static void fail(struct sbx_badarg *err, const char *field, const char *why) {
    if (err == NULL)
        return;
    err->field = field;
    err->why = why;
    err->field_term = NULL;
    err->field_term_len = 0;
}

/* As fail, naming the map key buf[start..end) as sent (a pointer into buf). */
static void fail_key(struct sbx_badarg *err, const char *field, const char *buf, int start,
                     int end, const char *why) {
    fail(err, field, why);
    if (err == NULL)
        return;
    err->field_term = buf + start;
    err->field_term_len = (size_t)(end - start);
}

/* Returns a fresh malloc'd copy of s[0..n) plus a NUL, owned by the caller; NULL if out of
 * memory. */
static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Owns nothing: the number of UTF-8 bytes for code point cp. */
static size_t utf8_len(unsigned long cp) {
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

/* Writes valid code point cp as UTF-8 into p (room for 4 bytes, the caller's); returns
 * how many bytes were written. */
static size_t utf8_put(unsigned char *p, unsigned long cp) {
    if (cp < 0x80) {
        p[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        p[0] = (unsigned char)(0xC0 | cp >> 6);
        p[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        p[0] = (unsigned char)(0xE0 | cp >> 12);
        p[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        p[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    p[0] = (unsigned char)(0xF0 | cp >> 18);
    p[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    p[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    p[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ---- strings ------------------------------------------------------------------------- */

#define STR_ATOM 1u /* an atom counts as a string */
#define STR_NUL  2u /* NUL bytes are data (stdin), not an error */

/* Converts latin-1 bytes p[0..n) (borrowed) to a fresh UTF-8 string in *out (the
 * caller's on success; nothing allocated on failure, with *why set). */
static int latin1_to_utf8(const char *p, size_t n, size_t max, char **out, size_t *out_len,
                          const char **why) {
    const unsigned char *u = (const unsigned char *)p;
    size_t len = 0;
    for (size_t k = 0; k < n; k++)
        len += u[k] < 0x80 ? 1 : 2;
    if (len > max) {
        *why = WHY_TOO_LONG;
        return -1;
    }
    unsigned char *s = malloc(len + 1);
    if (s == NULL) {
        *why = WHY_NO_MEMORY;
        return -1;
    }
    size_t w = 0;
    for (size_t k = 0; k < n; k++)
        w += utf8_put(s + w, u[k]);
    s[w] = '\0';
    *out = (char *)s;
    *out_len = w;
    return 0;
}

/* Decodes a proper list of code points at *idx into a fresh UTF-8 string in *out (the
 * caller's on success; nothing allocated on failure, with *why set). Advances *idx only
 * on success. */
static int codepoints_to_utf8(const char *buf, int *idx, size_t max, char **out,
                              size_t *out_len, const char **why) {
    int i = *idx, arity = 0;
    size_t len = 0;
    unsigned char *s = NULL;

    if (ei_decode_list_header(buf, &i, &arity) != 0 || arity < 0) {
        *why = WHY_NOT_A_STRING;
        goto err;
    }
    if ((size_t)arity > max) {
        *why = WHY_TOO_LONG;
        goto err;
    }
    /* First pass: check every element and count the bytes. */
    int first = i;
    for (int k = 0; k < arity; k++) {
        unsigned char t = tag_at(buf, i);
        long cp;
        if ((t != ERL_SMALL_INTEGER_EXT && t != ERL_INTEGER_EXT) ||
            ei_decode_long(buf, &i, &cp) != 0 || cp < 0 || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            *why = WHY_NOT_A_STRING;
            goto err;
        }
        len += utf8_len((unsigned long)cp);
    }
    if (tag_at(buf, i) != ERL_NIL_EXT) {
        *why = WHY_NOT_A_STRING; /* improper list */
        goto err;
    }
    i++;
    if (len > max) {
        *why = WHY_TOO_LONG;
        goto err;
    }
    s = malloc(len + 1);
    if (s == NULL) {
        *why = WHY_NO_MEMORY;
        goto err;
    }
    /* Second pass: encode. */
    size_t w = 0;
    for (int k = 0, j = first; k < arity; k++) {
        long cp = 0;
        ei_decode_long(buf, &j, &cp);
        w += utf8_put(s + w, (unsigned long)cp);
    }
    s[w] = '\0';
    *out = (char *)s;
    *out_len = w;
    *idx = i;
    return 0;
err:
    free(s);
    return -1;
}

/* Decodes the string at *idx (binary, charlist, and an atom with STR_ATOM) into a fresh
 * NUL-terminated copy in *out of *out_len bytes, owned by the caller on success. At most
 * max bytes; NUL bytes are refused unless flags has STR_NUL. On failure returns -1 with
 * *why set, nothing allocated, *out NULL and *idx unchanged. */
static int get_string(const char *buf, int *idx, unsigned flags, size_t max, char **out,
                      size_t *out_len, const char **why) {
    int i = *idx;
    unsigned char t = tag_at(buf, i);
    char *s = NULL;
    size_t len = 0, n;

    *out = NULL;
    *out_len = 0;
    switch (t) {
    case ERL_BINARY_EXT:
        n = be32_at(buf + i + 1);
        if (n > max) {
            *why = WHY_TOO_LONG;
            goto err;
        }
        s = dup_bytes(buf + i + 5, n);
        len = n;
        if (s == NULL) {
            *why = WHY_NO_MEMORY;
            goto err;
        }
        i += 5 + (int)n;
        break;
    case ERL_STRING_EXT: /* a charlist of code points 0..255 */
        n = be16_at(buf + i + 1);
        if (latin1_to_utf8(buf + i + 3, n, max, &s, &len, why) != 0)
            goto err;
        i += 3 + (int)n;
        break;
    case ERL_NIL_EXT:
        s = dup_bytes("", 0);
        if (s == NULL) {
            *why = WHY_NO_MEMORY;
            goto err;
        }
        i += 1;
        break;
    case ERL_LIST_EXT:
        if (codepoints_to_utf8(buf, &i, max, &s, &len, why) != 0)
            goto err;
        break;
    case ERL_ATOM_EXT: case ERL_ATOM_UTF8_EXT:
    case ERL_SMALL_ATOM_EXT: case ERL_SMALL_ATOM_UTF8_EXT: {
        if (!(flags & STR_ATOM)) {
            *why = WHY_NOT_A_STRING;
            goto err;
        }
        int small = t == ERL_SMALL_ATOM_EXT || t == ERL_SMALL_ATOM_UTF8_EXT;
        n = small ? (size_t)(unsigned char)buf[i + 1] : be16_at(buf + i + 1);
        const char *p = buf + i + (small ? 2 : 3);
        if (t == ERL_ATOM_EXT || t == ERL_SMALL_ATOM_EXT) {
            if (latin1_to_utf8(p, n, max, &s, &len, why) != 0)
                goto err;
        } else {
            if (n > max) {
                *why = WHY_TOO_LONG;
                goto err;
            }
            s = dup_bytes(p, n);
            len = n;
            if (s == NULL) {
                *why = WHY_NO_MEMORY;
                goto err;
            }
        }
        i = (int)(p - buf) + (int)n;
        break;
    }
    default:
        *why = WHY_NOT_A_STRING;
        goto err;
    }
    if (!(flags & STR_NUL) && len > 0 && memchr(s, '\0', len) != NULL) {
        *why = WHY_CONTAINS_NUL;
        goto err;
    }
    *out = s;
    *out_len = len;
    *idx = i;
    return 0;
err:
    free(s);
    return -1;
}

/* As get_string, also refusing the empty string, and reporting {field, Why} into err.
 * *out is the caller's on success, NULL on failure. */
static int get_nonempty(const char *buf, int *idx, const char *field, unsigned flags,
                        size_t max, char **out, struct sbx_badarg *err) {
    const char *why = NULL;
    char *s = NULL;
    size_t len = 0;
    if (get_string(buf, idx, flags, max, &s, &len, &why) != 0)
        goto err;
    if (len == 0) {
        why = WHY_EMPTY;
        goto err;
    }
    *out = s;
    return 0;
err:
    free(s);
    *out = NULL;
    fail(err, field, why);
    return -1;
}

/* Checks a non-empty string at *idx and frees it again (for keys that later work
 * decodes). Owns nothing afterwards. */
static int check_string(const char *buf, int *idx, const char *field, unsigned flags,
                        size_t max, struct sbx_badarg *err) {
    char *s = NULL;
    if (get_nonempty(buf, idx, field, flags, max, &s, err) != 0)
        return -1;
    free(s);
    return 0;
}

/* Reads an atom or binary at *idx as a key or enum name into out (the caller's, cap
 * bytes). Returns 1 when it fits, is ASCII and has no NUL; 0 when it is an atom or binary
 * that cannot match any name we know (out is then ""); -1 when it is neither (nothing
 * read). Advances *idx past the term unless -1. */
static int get_name(const char *buf, int *idx, char *out, size_t cap) {
    int i = *idx;
    unsigned char t = tag_at(buf, i);
    const char *p;
    size_t n;

    out[0] = '\0';
    if (t == ERL_BINARY_EXT) {
        n = be32_at(buf + i + 1);
        p = buf + i + 5;
    } else if (t == ERL_ATOM_EXT || t == ERL_ATOM_UTF8_EXT) {
        n = be16_at(buf + i + 1);
        p = buf + i + 3;
    } else if (t == ERL_SMALL_ATOM_EXT || t == ERL_SMALL_ATOM_UTF8_EXT) {
        n = (unsigned char)buf[i + 1];
        p = buf + i + 2;
    } else {
        return -1;
    }
    *idx = (int)(p - buf) + (int)n;
    if (n >= cap)
        return 0;
    for (size_t k = 0; k < n; k++)
        if (p[k] == '\0' || (unsigned char)p[k] >= 0x80)
            return 0;
    memcpy(out, p, n);
    out[n] = '\0';
    return 1;
}

/* Owns nothing: the index of name in names[0..n), or -1. */
static int find_name(const char *name, const char *const *names, size_t n) {
    for (size_t k = 0; k < n; k++)
        if (strcmp(name, names[k]) == 0)
            return (int)k;
    return -1;
}

/* An enum value: an atom or binary from names[0..n). Writes its index to *out; -1 with
 * {field, unknown_value} for anything else. Owns nothing. */
static int get_enum(const char *buf, int *idx, const char *field, const char *const *names,
                    size_t n, int *out, struct sbx_badarg *err) {
    char name[KEY_NAME_CAP];
    int i = *idx;
    int k = get_name(buf, &i, name, sizeof name) == 1 ? find_name(name, names, n) : -1;
    if (k < 0) {
        fail(err, field, WHY_UNKNOWN_VALUE);
        return -1;
    }
    *out = k;
    *idx = i;
    return 0;
}

/* ---- numbers ------------------------------------------------------------------------- */

/* An integer in lo..hi at *idx into *out: {field, not_an_integer | out_of_range}. Owns
 * nothing. */
static int get_int(const char *buf, int *idx, const char *field, long long lo, long long hi,
                   long long *out, struct sbx_badarg *err) {
    int i = *idx;
    long long v;
    if (!is_int_tag(tag_at(buf, i))) {
        fail(err, field, WHY_NOT_AN_INTEGER);
        return -1;
    }
    if (ei_decode_longlong(buf, &i, &v) != 0 || v < lo || v > hi) {
        fail(err, field, WHY_OUT_OF_RANGE); /* a bignum beyond 64 bits is out of range */
        return -1;
    }
    *out = v;
    *idx = i;
    return 0;
}

/* A number (integer or float) with lo < v <= hi: {field, not_a_number | out_of_range}.
 * Owns nothing. */
static int get_number(const char *buf, int *idx, const char *field, double lo, double hi,
                      double *out, struct sbx_badarg *err) {
    int i = *idx;
    unsigned char t = tag_at(buf, i);
    double v;
    if (is_int_tag(t)) {
        long long n;
        if (ei_decode_longlong(buf, &i, &n) != 0) {
            fail(err, field, WHY_OUT_OF_RANGE);
            return -1;
        }
        v = (double)n;
    } else if (t == NEW_FLOAT_EXT || t == ERL_FLOAT_EXT) {
        if (ei_decode_double(buf, &i, &v) != 0) {
            fail(err, field, WHY_NOT_A_NUMBER);
            return -1;
        }
    } else {
        fail(err, field, WHY_NOT_A_NUMBER);
        return -1;
    }
    if (!isfinite(v) || !(v > lo) || v > hi) {
        fail(err, field, WHY_OUT_OF_RANGE);
        return -1;
    }
    *out = v;
    *idx = i;
    return 0;
}

/* ---- lists --------------------------------------------------------------------------- */

/* Opens a list at *idx: 0 with *arity for [] or a LIST_EXT (then *idx is at the first
 * element), 1 for a STRING_EXT (a list whose elements are small integers; nothing read),
 * -1 for anything else. Owns nothing. */
static int list_open(const char *buf, int *idx, int *arity) {
    unsigned char t = tag_at(buf, *idx);
    if (t == ERL_STRING_EXT)
        return 1;
    if (t != ERL_NIL_EXT && t != ERL_LIST_EXT)
        return -1;
    if (ei_decode_list_header(buf, idx, arity) != 0)
        return -1;
    return 0;
}

/* Closes a list opened by list_open after arity elements: the tail must be [] (always
 * true for an empty list, which has no tail). Owns nothing. */
static int list_close(const char *buf, int *idx, int arity) {
    if (arity == 0)
        return 0;
    if (tag_at(buf, *idx) != ERL_NIL_EXT)
        return -1;
    *idx += 1;
    return 0;
}

/* ---- string vectors and key/value vectors ------------------------------------------- */

/* Frees what v owns and zeroes it. */
static void strv_free(struct sbx_strv *v) {
    if (v->v != NULL)
        for (size_t k = 0; k < v->n; k++)
            free(v->v[k]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

/* Frees what v owns and zeroes it. */
static void kvv_free(struct sbx_kvv *v) {
    if (v->v != NULL)
        for (size_t k = 0; k < v->n; k++) {
            free(v->v[k].key);
            free(v->v[k].value);
        }
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

/* qsort order of key/value pairs by key; owns nothing. */
static int kv_cmp(const void *a, const void *b) {
    return strcmp(((const struct sbx_kv *)a)->key, ((const struct sbx_kv *)b)->key);
}

/* Rules for a string map (env, labels). */
struct kv_rules {
    unsigned key_flags;
    size_t key_max, value_max, count_max;
    int no_eq; /* keys may not contain '=' (env) */
};

static const struct kv_rules ENV_RULES = {0, ENV_STR_MAX, ENV_STR_MAX, ENV_COUNT_MAX, 1};
static const struct kv_rules LABEL_RULES = {STR_ATOM, LABEL_STR_MAX, LABEL_STR_MAX,
                                            LABEL_COUNT_MAX, 0};

/* A map of strings to strings at *idx into *out (owned by the caller on success, sorted by
 * key; on failure *out is left empty). Errors name field: not_a_map, too_many, and the
 * string reasons for keys and values; an empty key is empty, keys equal after decoding
 * (a binary and a charlist with the same text) are duplicate_key. */
static int get_kvv(const char *buf, int *idx, const char *field, const struct kv_rules *r,
                   struct sbx_kvv *out, struct sbx_badarg *err) {
    struct sbx_kvv v = {0, NULL};
    int i = *idx, arity = 0;
    const char *why = NULL;
    size_t len;

    memset(out, 0, sizeof *out);
    if (tag_at(buf, i) != ERL_MAP_EXT || ei_decode_map_header(buf, &i, &arity) != 0) {
        why = WHY_NOT_A_MAP;
        goto err;
    }
    if ((size_t)arity > r->count_max) {
        why = WHY_TOO_MANY;
        goto err;
    }
    if (arity > 0) {
        v.v = calloc((size_t)arity, sizeof *v.v);
        if (v.v == NULL) {
            why = WHY_NO_MEMORY;
            goto err;
        }
    }
    for (int k = 0; k < arity; k++) {
        struct sbx_kv *kv = &v.v[v.n];
        if (get_string(buf, &i, r->key_flags, r->key_max, &kv->key, &len, &why) != 0)
            goto err;
        v.n++; /* from here on kv is freed with v */
        if (len == 0) {
            why = WHY_EMPTY;
            goto err;
        }
        if (r->no_eq && memchr(kv->key, '=', len) != NULL) {
            why = WHY_INVALID_CHARACTERS;
            goto err;
        }
        if (get_string(buf, &i, 0, r->value_max, &kv->value, &len, &why) != 0)
            goto err;
    }
    if (v.n > 1) {
        qsort(v.v, v.n, sizeof *v.v, kv_cmp);
        for (size_t k = 1; k < v.n; k++)
            if (strcmp(v.v[k - 1].key, v.v[k].key) == 0) {
                why = WHY_DUPLICATE_KEY;
                goto err;
            }
    }
    *out = v;
    *idx = i;
    return 0;
err:
    kvv_free(&v);
    fail(err, field, why);
    return -1;
}

/* ---- maps with known keys ------------------------------------------------------------ */

struct key_def {
    const char *name;
    unsigned mask; /* which variants (sandbox types, check types) take this key */
};

/* Where a key and its value sit in the buffer; key < 0: absent. */
struct key_pos {
    int key, key_end, val;
};

/* Walks the map at *idx, whose keys must be atoms or binaries naming defs[0..n) entries
 * whose mask meets allow. Records in pos[] where each key and value start. Errors:
 * {field, not_a_map}, {field, bad_key}, and {Key, unknown_key | duplicate_key} with Key
 * as sent (field_term). Advances *idx past the map on success. Owns nothing. */
static int scan_map(const char *buf, int *idx, const char *field, const struct key_def *defs,
                    size_t n, unsigned allow, struct key_pos *pos, struct sbx_badarg *err) {
    int i = *idx, arity = 0;

    for (size_t k = 0; k < n; k++)
        pos[k].key = pos[k].key_end = pos[k].val = -1;
    if (tag_at(buf, i) != ERL_MAP_EXT || ei_decode_map_header(buf, &i, &arity) != 0) {
        fail(err, field, WHY_NOT_A_MAP);
        return -1;
    }
    for (int e = 0; e < arity; e++) {
        char name[KEY_NAME_CAP];
        int ks = i;
        int r = get_name(buf, &i, name, sizeof name);
        if (r < 0) {
            fail(err, field, WHY_BAD_KEY);
            return -1;
        }
        int k = r == 1 ? -1 : -2;
        for (size_t d = 0; r == 1 && d < n; d++)
            if (strcmp(name, defs[d].name) == 0 && (defs[d].mask & allow) != 0)
                k = (int)d;
        if (k < 0) {
            fail_key(err, field, buf, ks, i, WHY_UNKNOWN_KEY);
            return -1;
        }
        if (pos[k].key >= 0) {
            fail_key(err, field, buf, ks, i, WHY_DUPLICATE_KEY); /* cmd and <<"cmd">> */
            return -1;
        }
        pos[k].key = ks;
        pos[k].key_end = i;
        pos[k].val = i;
        if (ei_skip_term(buf, &i) != 0) {
            fail(err, field, WHY_NOT_A_MAP);
            return -1;
        }
    }
    *idx = i;
    return 0;
}

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
    if (get_string(buf, &i, STR_ATOM, SBX_ID_MAX, &s, &len, &why) != 0) {
        if (why == WHY_CONTAINS_NUL)
            why = WHY_INVALID_CHARACTERS;
        goto err;
    }
    if (len == 0) {
        why = WHY_EMPTY;
        goto err;
    }
    for (size_t k = 0; k < len; k++)
        if (!is_id_char(s[k], k == 0)) {
            why = WHY_INVALID_CHARACTERS;
            goto err;
        }
    memcpy(out, s, len + 1);
    free(s);
    *idx = i;
    return 0;
err:
    free(s);
    fail(err, "id", why);
    return -1;
}

/* *out is the caller's; nothing is allocated. */
int sbx_decode_type(const char *buf, int *idx, enum sbx_type *out, struct sbx_badarg *err) {
    int k = 0;
    *out = SBX_TYPE_PROCESS;
    if (get_enum(buf, idx, "type", TYPE_NAMES, 4, &k, err) != 0)
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
    unsigned char t = tag_at(buf, i);
    const char *why = NULL;
    size_t len = 0;

    memset(out, 0, sizeof *out);
    if (t == ERL_NIL_EXT) {
        why = WHY_EMPTY;
        goto err;
    }
    /* A binary, or a charlist (a flat list of code points: no argv is a list of
     * integers, so there is no ambiguity), is one shell command line. */
    if (t == ERL_BINARY_EXT || t == ERL_STRING_EXT ||
        (t == ERL_LIST_EXT && is_int_tag(tag_at(buf, i + 5)))) {
        v.v = calloc(4, sizeof *v.v);
        if (v.v == NULL) {
            why = WHY_NO_MEMORY;
            goto err;
        }
        v.n = 3; /* slots still NULL are freed as they are */
        if (get_string(buf, &i, 0, CMD_ARG_MAX, &v.v[2], &len, &why) != 0)
            goto err;
        if (len == 0) {
            why = WHY_EMPTY;
            goto err;
        }
        v.v[0] = dup_bytes("/bin/sh", 7);
        v.v[1] = dup_bytes("-c", 2);
        if (v.v[0] == NULL || v.v[1] == NULL) {
            why = WHY_NO_MEMORY;
            goto err;
        }
        goto done;
    }
    if (t != ERL_LIST_EXT || ei_decode_list_header(buf, &i, &arity) != 0) {
        why = WHY_NOT_A_LIST;
        goto err;
    }
    if ((size_t)arity > CMD_ARGC_MAX) {
        why = WHY_TOO_MANY;
        goto err;
    }
    v.v = calloc((size_t)arity + 1, sizeof *v.v);
    if (v.v == NULL) {
        why = WHY_NO_MEMORY;
        goto err;
    }
    for (int k = 0; k < arity; k++) {
        if (get_string(buf, &i, 0, CMD_ARG_MAX, &v.v[k], &len, &why) != 0)
            goto err;
        v.n++;
        if (k == 0 && len == 0) {
            why = WHY_EMPTY; /* the program */
            goto err;
        }
    }
    if (list_close(buf, &i, arity) != 0) {
        why = WHY_NOT_A_LIST; /* improper */
        goto err;
    }
done:
    *out = v;
    *idx = i;
    return 0;
err:
    strv_free(&v);
    fail(err, field, why);
    return -1;
}

/* ---- health checks ------------------------------------------------------------------- */

enum { HC_TYPE, HC_PORT, HC_PATH, HC_STATUS, HC_CMD, HC_TIMEOUT_MS, HC_INTERVAL_MS, HC_COUNT };

#define HC_BIT(t) (1u << (t))
#define HC_ALL (HC_BIT(SBX_HC_TCP) | HC_BIT(SBX_HC_HTTP) | HC_BIT(SBX_HC_EXEC))

static const struct key_def HC_KEYS[HC_COUNT] = {
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
    strv_free(&h->cmd);
    memset(h, 0, sizeof *h);
}

/* A health_check map at *idx into *out (owned by the caller on success; left zeroed on
 * failure). Keys that do not apply to the check's type are unknown_key. */
static int decode_health(const char *buf, int *idx, struct sbx_health_check *out,
                         struct sbx_badarg *err) {
    struct sbx_health_check h;
    struct key_pos pos[HC_COUNT];
    int end = *idx, i, k = 0;
    long long v;

    memset(&h, 0, sizeof h);
    memset(out, 0, sizeof *out);
    if (scan_map(buf, &end, "health_check", HC_KEYS, HC_COUNT, HC_ALL, pos, err) != 0)
        goto err;
    if (pos[HC_TYPE].val < 0) {
        fail(err, "type", WHY_MISSING);
        goto err;
    }
    i = pos[HC_TYPE].val;
    if (get_enum(buf, &i, "type", HC_TYPE_NAMES, 3, &k, err) != 0)
        goto err;
    h.type = (enum sbx_hc_type)(k + 1);
    for (int d = 0; d < HC_COUNT; d++)
        if (pos[d].key >= 0 && (HC_KEYS[d].mask & HC_BIT(h.type)) == 0) {
            fail_key(err, "health_check", buf, pos[d].key, pos[d].key_end, WHY_UNKNOWN_KEY);
            goto err;
        }
    h.status = 200;
    h.timeout_ms = 30000;
    h.interval_ms = 250;
    if (h.type == SBX_HC_TCP || h.type == SBX_HC_HTTP) {
        if (pos[HC_PORT].val < 0) {
            fail(err, "port", WHY_MISSING);
            goto err;
        }
        i = pos[HC_PORT].val;
        if (get_int(buf, &i, "port", 1, 65535, &v, err) != 0)
            goto err;
        h.port = (int)v;
    }
    if (h.type == SBX_HC_HTTP) {
        if (pos[HC_PATH].val >= 0) {
            i = pos[HC_PATH].val;
            if (get_nonempty(buf, &i, "path", 0, PATH_LEN_MAX, &h.path, err) != 0)
                goto err;
            if (h.path[0] != '/') {
                fail(err, "path", WHY_NOT_ABSOLUTE);
                goto err;
            }
        } else if ((h.path = dup_bytes("/", 1)) == NULL) {
            fail(err, "path", WHY_NO_MEMORY);
            goto err;
        }
        if (pos[HC_STATUS].val >= 0) {
            i = pos[HC_STATUS].val;
            if (get_int(buf, &i, "status", 100, 599, &v, err) != 0)
                goto err;
            h.status = (int)v;
        }
    }
    if (h.type == SBX_HC_EXEC) {
        if (pos[HC_CMD].val < 0) {
            fail(err, "cmd", WHY_MISSING);
            goto err;
        }
        i = pos[HC_CMD].val;
        if (sbx_decode_cmd(buf, &i, "cmd", &h.cmd, err) != 0)
            goto err;
    }
    if (pos[HC_TIMEOUT_MS].val >= 0) {
        i = pos[HC_TIMEOUT_MS].val;
        if (get_int(buf, &i, "timeout_ms", 1, DAY_MS, &v, err) != 0)
            goto err;
        h.timeout_ms = (int)v;
    }
    if (pos[HC_INTERVAL_MS].val >= 0) {
        i = pos[HC_INTERVAL_MS].val;
        if (get_int(buf, &i, "interval_ms", 10, 60000, &v, err) != 0)
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

/* ---- type-specific keys checked for shape only --------------------------------------- */

/* A proper list of non-empty strings (atoms too with STR_ATOM), at most max bytes each
 * and at most 256 of them, into *out (the caller's on success, zeroed on failure). */
static int get_string_list(const char *buf, int *idx, const char *field, unsigned flags,
                           size_t max, struct sbx_strv *out, struct sbx_badarg *err) {
    struct sbx_strv v = {0, NULL};
    int i = *idx, arity = 0;
    int r = list_open(buf, &i, &arity);
    if (r != 0) {
        fail(err, field, r == 1 ? WHY_NOT_A_STRING : WHY_NOT_A_LIST);
        goto err;
    }
    if (arity > 256) {
        fail(err, field, WHY_TOO_MANY);
        goto err;
    }
    v.v = calloc((size_t)arity + 1, sizeof *v.v);
    if (v.v == NULL) {
        fail(err, field, WHY_NO_MEMORY);
        goto err;
    }
    for (int k = 0; k < arity; k++) {
        if (get_nonempty(buf, &i, field, flags, max, &v.v[k], err) != 0)
            goto err;
        v.n++;
    }
    if (list_close(buf, &i, arity) != 0) {
        fail(err, field, WHY_NOT_A_LIST);
        goto err;
    }
    *out = v;
    *idx = i;
    return 0;
err:
    strv_free(&v);
    memset(out, 0, sizeof *out);
    return -1;
}

/* erl_args: a list of strings, or one binary split at spaces. *out as get_string_list. */
static int get_erl_args(const char *buf, int *idx, struct sbx_strv *out, struct sbx_badarg *err) {
    char *s = NULL, *save = NULL;
    struct sbx_strv v = {0, NULL};
    if (tag_at(buf, *idx) != ERL_BINARY_EXT)
        return get_string_list(buf, idx, "erl_args", 0, CMD_ARG_MAX, out, err);
    if (get_nonempty(buf, idx, "erl_args", 0, CMD_ARG_MAX, &s, err) != 0)
        return -1;
    size_t words = 1;
    for (const char *p = s; *p != '\0'; p++)
        words += *p == ' ';
    v.v = calloc(words + 1, sizeof *v.v);
    if (v.v == NULL) {
        fail(err, "erl_args", WHY_NO_MEMORY);
        goto err;
    }
    for (char *w = strtok_r(s, " ", &save); w != NULL; w = strtok_r(NULL, " ", &save)) {
        v.v[v.n] = dup_bytes(w, strlen(w));
        if (v.v[v.n] == NULL) {
            fail(err, "erl_args", WHY_NO_MEMORY);
            goto err;
        }
        v.n++;
    }
    free(s);
    *out = v;
    return 0;
err:
    free(s);
    strv_free(&v);
    return -1;
}

/* A port number at *idx: an integer in lo..65535. */
static int get_port_num(const char *buf, int *idx, int lo, int *out, struct sbx_badarg *err) {
    long long v;
    if (get_int(buf, idx, "ports", lo, 65535, &v, err) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

enum { P_HOST, P_CONTAINER, P_PROTOCOL, P_COUNT };
static const struct key_def PORT_KEYS[P_COUNT] = {
    [P_HOST] = {"host", 1}, [P_CONTAINER] = {"container", 1}, [P_PROTOCOL] = {"protocol", 1},
};
static const char *const PROTO_NAMES[] = {"tcp", "udp"};

/* One port: {HostPort, ContainerPort} or #{host, container, protocol}. Owns nothing. */
static int get_port(const char *buf, int *idx, struct sbx_port *out, struct sbx_badarg *err) {
    int i = *idx, arity = 0, proto = 0;
    memset(out, 0, sizeof *out);
    if (tag_at(buf, i) == ERL_SMALL_TUPLE_EXT) {
        if (ei_decode_tuple_header(buf, &i, &arity) != 0 || arity != 2) {
            fail(err, "ports", WHY_UNKNOWN_VALUE);
            return -1;
        }
        if (get_port_num(buf, &i, 0, &out->host, err) != 0 ||
            get_port_num(buf, &i, 1, &out->container, err) != 0)
            return -1;
    } else if (tag_at(buf, i) == ERL_MAP_EXT) {
        struct key_pos pos[P_COUNT];
        int end = i, j;
        if (scan_map(buf, &end, "ports", PORT_KEYS, P_COUNT, 1, pos, err) != 0)
            return -1;
        if (pos[P_CONTAINER].val < 0) {
            fail(err, "ports", WHY_MISSING);
            return -1;
        }
        j = pos[P_CONTAINER].val;
        if (get_port_num(buf, &j, 1, &out->container, err) != 0)
            return -1;
        j = pos[P_HOST].val;
        if (j >= 0 && get_port_num(buf, &j, 0, &out->host, err) != 0)
            return -1;
        j = pos[P_PROTOCOL].val;
        if (j >= 0 && get_enum(buf, &j, "ports", PROTO_NAMES, 2, &proto, err) != 0)
            return -1;
        i = end;
    } else {
        fail(err, "ports", WHY_UNKNOWN_VALUE);
        return -1;
    }
    snprintf(out->proto, sizeof out->proto, "%s", PROTO_NAMES[proto]);
    *idx = i;
    return 0;
}

/* Docker ports: a proper list of at most 64 ports into c->ports. */
static int get_ports(const char *buf, int *idx, struct sbx_config *c, struct sbx_badarg *err) {
    int i = *idx, arity = 0;
    if (list_open(buf, &i, &arity) != 0) {
        fail(err, "ports", WHY_NOT_A_LIST);
        return -1;
    }
    if (arity > 64) {
        fail(err, "ports", WHY_TOO_MANY);
        return -1;
    }
    c->ports = calloc((size_t)arity + 1, sizeof *c->ports);
    if (c->ports == NULL) {
        fail(err, "ports", WHY_NO_MEMORY);
        return -1;
    }
    for (int k = 0; k < arity; k++) {
        if (get_port(buf, &i, &c->ports[k], err) != 0)
            return -1;
        c->nports++;
    }
    if (list_close(buf, &i, arity) != 0) {
        fail(err, "ports", WHY_NOT_A_LIST);
        return -1;
    }
    *idx = i;
    return 0;
}

/* "host:container[:ro]" from a host path and a container path (both absolute). */
static char *make_bind(const char *host, const char *ctr, const char *mode,
                       struct sbx_badarg *err) {
    if (host[0] != '/' || ctr[0] != '/' || strchr(host, ':') != NULL || strchr(ctr, ':') != NULL) {
        fail(err, "volumes", WHY_NOT_ABSOLUTE);
        return NULL;
    }
    size_t n = strlen(host) + strlen(ctr) + strlen(mode) + 3;
    char *b = malloc(n);
    if (b == NULL) {
        fail(err, "volumes", WHY_NO_MEMORY);
        return NULL;
    }
    snprintf(b, n, "%s:%s%s%s", host, ctr, mode[0] ? ":" : "", mode);
    return b;
}

/* Docker volumes: a list of "host:container[:ro]" strings or {Host, Container} tuples,
 * or a map Host => Container, into c->volumes (at most 64). */
static int get_volumes(const char *buf, int *idx, struct sbx_config *c, struct sbx_badarg *err) {
    int i = *idx, arity = 0, is_map = tag_at(buf, i) == ERL_MAP_EXT;
    if (is_map ? ei_decode_map_header(buf, &i, &arity) != 0 : list_open(buf, &i, &arity) != 0) {
        fail(err, "volumes", WHY_NOT_A_LIST);
        return -1;
    }
    if (arity > 64) {
        fail(err, "volumes", WHY_TOO_MANY);
        return -1;
    }
    c->volumes.v = calloc((size_t)arity + 1, sizeof *c->volumes.v);
    if (c->volumes.v == NULL) {
        fail(err, "volumes", WHY_NO_MEMORY);
        return -1;
    }
    for (int k = 0; k < arity; k++) {
        char *a = NULL, *b = NULL, *bind = NULL;
        int t = 0;
        if (!is_map && tag_at(buf, i) != ERL_SMALL_TUPLE_EXT) {
            if (get_nonempty(buf, &i, "volumes", 0, PATH_LEN_MAX * 2, &a, err) != 0)
                return -1;
            char *colon = strchr(a, ':');
            if (a[0] != '/' || colon == NULL || colon[1] != '/') {
                free(a);
                fail(err, "volumes", WHY_NOT_ABSOLUTE);
                return -1;
            }
            c->volumes.v[c->volumes.n++] = a;
            continue;
        }
        if (!is_map && (ei_decode_tuple_header(buf, &i, &t) != 0 || t != 2)) {
            fail(err, "volumes", WHY_UNKNOWN_VALUE);
            return -1;
        }
        if (get_nonempty(buf, &i, "volumes", 0, PATH_LEN_MAX, &a, err) == 0 &&
            get_nonempty(buf, &i, "volumes", 0, PATH_LEN_MAX, &b, err) == 0)
            bind = make_bind(a, b, "", err);
        free(a);
        free(b);
        if (bind == NULL)
            return -1;
        c->volumes.v[c->volumes.n++] = bind;
    }
    if (!is_map && list_close(buf, &i, arity) != 0) {
        fail(err, "volumes", WHY_NOT_A_LIST);
        return -1;
    }
    *idx = i;
    return 0;
}

enum { B_NAME, B_COOKIE, B_COUNT };
static const struct key_def BEAM_KEYS[B_COUNT] = {[B_NAME] = {"name", 1}, [B_COOKIE] = {"cookie", 1}};

/* docker's beam => #{name => Node, cookie => Cookie}: both required. */
static int get_docker_beam(const char *buf, int *idx, struct sbx_config *c,
                           struct sbx_badarg *err) {
    struct key_pos pos[B_COUNT];
    int end = *idx, j;
    if (scan_map(buf, &end, "beam", BEAM_KEYS, B_COUNT, 1, pos, err) != 0)
        return -1;
    if (pos[B_NAME].val < 0 || pos[B_COOKIE].val < 0) {
        fail(err, pos[B_NAME].val < 0 ? "name" : "cookie", WHY_MISSING);
        return -1;
    }
    j = pos[B_NAME].val;
    if (get_nonempty(buf, &j, "name", STR_ATOM, NAME_LEN_MAX, &c->node_name, err) != 0)
        return -1;
    if (strchr(c->node_name, '@') == NULL) {
        fail(err, "name", WHY_INVALID_CHARACTERS);
        return -1;
    }
    j = pos[B_COOKIE].val;
    if (get_nonempty(buf, &j, "cookie", STR_ATOM, NAME_LEN_MAX, &c->cookie, err) != 0)
        return -1;
    c->has_beam = 1;
    *idx = end;
    return 0;
}

/* A node name for beam_node: letters, digits, '_' and '-' before an optional @host. */
static int get_node_name(const char *buf, int *idx, char **out, struct sbx_badarg *err) {
    if (get_nonempty(buf, idx, "name", STR_ATOM, NAME_LEN_MAX, out, err) != 0)
        return -1;
    for (const char *p = *out; *p != '\0' && *p != '@'; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-')) {
            fail(err, "name", WHY_INVALID_CHARACTERS);
            return -1;
        }
    if ((*out)[0] == '@') {
        fail(err, "name", WHY_EMPTY);
        return -1;
    }
    return 0;
}

/* ---- create configs ------------------------------------------------------------------ */

enum {
    K_CMD, K_ENV, K_CWD, K_LABELS, K_MEMORY_MB, K_CPUS, K_PIDS_LIMIT, K_TTL_MS, K_OWNER,
    K_HEALTH_CHECK, K_RESTART, K_MAX_RESTARTS, K_WORKSPACE, K_METRICS_INTERVAL_MS,
    K_ISOLATION, K_USER,
    K_IMAGE, K_PORTS, K_VOLUMES, K_NETWORK, K_PULL,
    K_NAME, K_CODE_PATHS, K_APPS, K_ERL_ARGS, K_COOKIE,
    K_KERNEL, K_INITRD, K_DISK, K_ACCEL, K_BEAM,
    K_COUNT
};

#define T_BIT(t) (1u << (t))
#define T_PROC T_BIT(SBX_TYPE_PROCESS)
#define T_DOCKER T_BIT(SBX_TYPE_DOCKER)
#define T_BEAM T_BIT(SBX_TYPE_BEAM_NODE)
#define T_VM T_BIT(SBX_TYPE_VM)
#define T_ALL (T_PROC | T_DOCKER | T_BEAM | T_VM)

static const struct key_def CONFIG_KEYS[K_COUNT] = {
    [K_CMD] = {"cmd", T_ALL},
    [K_ENV] = {"env", T_ALL},
    [K_CWD] = {"cwd", T_ALL},
    [K_LABELS] = {"labels", T_ALL},
    [K_MEMORY_MB] = {"memory_mb", T_ALL},
    [K_CPUS] = {"cpus", T_ALL},
    [K_PIDS_LIMIT] = {"pids_limit", T_ALL},
    [K_TTL_MS] = {"ttl_ms", T_ALL},
    [K_OWNER] = {"owner", T_ALL},
    [K_HEALTH_CHECK] = {"health_check", T_ALL},
    [K_RESTART] = {"restart", T_ALL},
    [K_MAX_RESTARTS] = {"max_restarts", T_ALL},
    [K_WORKSPACE] = {"workspace", T_ALL},
    [K_METRICS_INTERVAL_MS] = {"metrics_interval_ms", T_ALL},
    [K_ISOLATION] = {"isolation", T_PROC},
    [K_USER] = {"user", T_PROC | T_BEAM},
    [K_IMAGE] = {"image", T_DOCKER},
    [K_PORTS] = {"ports", T_DOCKER},
    [K_VOLUMES] = {"volumes", T_DOCKER},
    [K_NETWORK] = {"network", T_DOCKER},
    [K_PULL] = {"pull", T_DOCKER},
    [K_NAME] = {"name", T_BEAM},
    [K_CODE_PATHS] = {"code_paths", T_BEAM},
    [K_APPS] = {"apps", T_BEAM},
    [K_ERL_ARGS] = {"erl_args", T_BEAM},
    [K_COOKIE] = {"cookie", T_BEAM},
    [K_KERNEL] = {"kernel", T_VM},
    [K_INITRD] = {"initrd", T_VM},
    [K_DISK] = {"disk", T_VM},
    [K_ACCEL] = {"accel", T_VM},
    [K_BEAM] = {"beam", T_DOCKER},
};

static const char *const RESTART_NAMES[] = {"never", "on_failure", "always"};
static const char *const ISOLATION_NAMES[] = {"none", "namespaces"};
static const char *const PULL_NAMES[] = {"if_missing", "never", "always"}; /* enum sbx_pull */
static const char *const ACCEL_NAMES[] = {"kvm", "tcg", "auto"};

/* A user: a non-empty string, or a uid (stored as its decimal string). *out is the
 * caller's on success. */
static int get_user(const char *buf, int *idx, char **out, struct sbx_badarg *err) {
    long long uid;
    char digits[24];
    if (!is_int_tag(tag_at(buf, *idx)))
        return get_nonempty(buf, idx, "user", 0, USER_LEN_MAX, out, err);
    if (get_int(buf, idx, "user", 0, UID_MAX_VALUE, &uid, err) != 0)
        return -1;
    int n = snprintf(digits, sizeof digits, "%lld", uid);
    *out = dup_bytes(digits, (size_t)n);
    if (*out == NULL) {
        fail(err, "user", WHY_NO_MEMORY);
        return -1;
    }
    return 0;
}

/* A pid at *idx: its encoded bytes copied into *out (the caller's on success). */
static int get_owner(const char *buf, int *idx, char **out, size_t *out_len,
                     struct sbx_badarg *err) {
    int i = *idx;
    unsigned char t = tag_at(buf, i);
    if ((t != ERL_PID_EXT && t != ERL_NEW_PID_EXT) || ei_skip_term(buf, &i) != 0) {
        fail(err, "owner", WHY_NOT_A_PID);
        return -1;
    }
    *out = malloc((size_t)(i - *idx));
    if (*out == NULL) {
        fail(err, "owner", WHY_NO_MEMORY);
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
    if (get_nonempty(buf, idx, "workspace", 0, PATH_LEN_MAX, &s, err) != 0)
        goto err;
    if (s[0] != '/') {
        fail(err, "workspace", WHY_NOT_ABSOLUTE);
        goto err;
    }
    *out = s;
    return 0;
err:
    free(s);
    *out = NULL;
    return -1;
}

/* Decodes the value of config key k at buf[i] into c, which owns whatever is stored
 * (freed with sbx_config_free whether or not this succeeds). */
static int config_value(const char *buf, int i, int k, struct sbx_config *c,
                        struct sbx_badarg *err) {
    const char *f = CONFIG_KEYS[k].name;
    long long v;
    int e = 0;

    switch (k) {
    case K_CMD: return sbx_decode_cmd(buf, &i, f, &c->cmd, err);
    case K_ENV: return get_kvv(buf, &i, f, &ENV_RULES, &c->env, err);
    case K_CWD: return get_nonempty(buf, &i, f, 0, PATH_LEN_MAX, &c->cwd, err);
    case K_LABELS: return get_kvv(buf, &i, f, &LABEL_RULES, &c->labels, err);
    case K_MEMORY_MB:
        if (get_int(buf, &i, f, 4, 1048576, &v, err) != 0)
            return -1;
        c->memory_mb = (long)v;
        return 0;
    case K_CPUS: return get_number(buf, &i, f, 0.0, 1024.0, &c->cpus, err);
    case K_PIDS_LIMIT:
        if (get_int(buf, &i, f, 1, 1000000, &v, err) != 0)
            return -1;
        c->pids_limit = (long)v;
        return 0;
    case K_TTL_MS:
        if (get_int(buf, &i, f, 1, TTL_MS_MAX, &v, err) != 0)
            return -1;
        c->ttl_ms = v;
        return 0;
    case K_OWNER: return get_owner(buf, &i, &c->owner, &c->owner_len, err);
    case K_HEALTH_CHECK: return decode_health(buf, &i, &c->health, err);
    case K_RESTART:
        if (get_enum(buf, &i, f, RESTART_NAMES, 3, &e, err) != 0)
            return -1;
        c->restart = (enum sbx_restart)e;
        return 0;
    case K_MAX_RESTARTS:
        if (get_int(buf, &i, f, 0, 1000000, &v, err) != 0)
            return -1;
        c->max_restarts = (int)v;
        return 0;
    case K_WORKSPACE: return get_workspace(buf, &i, &c->workspace, err);
    case K_METRICS_INTERVAL_MS:
        if (get_int(buf, &i, f, 100, 3600000, &v, err) != 0)
            return -1;
        c->metrics_interval_ms = v;
        return 0;
    case K_ISOLATION:
        if (get_enum(buf, &i, f, ISOLATION_NAMES, 2, &e, err) != 0)
            return -1;
        c->isolation = (enum sbx_isolation)e;
        return 0;
    case K_USER: return get_user(buf, &i, &c->user, err);
    case K_IMAGE: return get_nonempty(buf, &i, f, 0, PATH_LEN_MAX, &c->image, err);
    case K_PORTS: return get_ports(buf, &i, c, err);
    case K_VOLUMES: return get_volumes(buf, &i, c, err);
    case K_NETWORK: return get_nonempty(buf, &i, f, 0, NAME_LEN_MAX, &c->network, err);
    case K_PULL:
        if (get_enum(buf, &i, f, PULL_NAMES, 3, &e, err) != 0)
            return -1;
        c->pull = (enum sbx_pull)e;
        return 0;
    case K_NAME: return get_node_name(buf, &i, &c->node_name, err);
    case K_CODE_PATHS: return get_string_list(buf, &i, f, 0, PATH_LEN_MAX, &c->code_paths, err);
    case K_APPS: return get_string_list(buf, &i, f, STR_ATOM, NAME_LEN_MAX, &c->apps, err);
    case K_ERL_ARGS: return get_erl_args(buf, &i, &c->erl_args, err);
    case K_COOKIE: return get_nonempty(buf, &i, f, STR_ATOM, NAME_LEN_MAX, &c->cookie, err);
    case K_BEAM: return get_docker_beam(buf, &i, c, err);
    /* vm keys: only their shape is checked until a vm backend exists. */
    case K_KERNEL: case K_INITRD: case K_DISK:
        return check_string(buf, &i, f, 0, PATH_LEN_MAX, err);
    case K_ACCEL: return get_enum(buf, &i, f, ACCEL_NAMES, 3, &e, err);
    default: fail(err, "config", WHY_UNKNOWN_KEY); return -1;
    }
}

/* On success *out owns its strings (sbx_config_free); on failure it is left zeroed. */
int sbx_config_decode(const char *buf, int *idx, enum sbx_type type, struct sbx_config *out,
                      struct sbx_badarg *err) {
    struct sbx_config c;
    struct key_pos pos[K_COUNT];
    int start = *idx, end = *idx;

    memset(&c, 0, sizeof c);
    memset(out, 0, sizeof *out);
    if ((unsigned)type > SBX_TYPE_VM) {
        fail(err, "type", WHY_UNKNOWN_VALUE);
        goto err;
    }
    c.type = type;
    c.max_restarts = 5;
    c.metrics_interval_ms = 1000;
    if (scan_map(buf, &end, "config", CONFIG_KEYS, K_COUNT, T_BIT(type), pos, err) != 0)
        goto err;
    for (int k = 0; k < K_COUNT; k++)
        if (pos[k].val >= 0 && config_value(buf, pos[k].val, k, &c, err) != 0)
            goto err;
    if (type == SBX_TYPE_PROCESS && pos[K_CMD].val < 0) {
        fail(err, "cmd", WHY_MISSING);
        goto err;
    }
    if (type == SBX_TYPE_DOCKER && pos[K_IMAGE].val < 0) {
        fail(err, "image", WHY_MISSING);
        goto err;
    }
    if (type == SBX_TYPE_VM && pos[K_KERNEL].val < 0) {
        fail(err, "kernel", WHY_MISSING);
        goto err;
    }
    c.raw = malloc((size_t)(end - start));
    if (c.raw == NULL) {
        fail(err, "config", WHY_NO_MEMORY);
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

/* Frees everything c owns and zeroes it. */
void sbx_config_free(struct sbx_config *c) {
    if (c == NULL)
        return;
    strv_free(&c->cmd);
    kvv_free(&c->env);
    free(c->cwd);
    kvv_free(&c->labels);
    free(c->owner);
    health_free(&c->health);
    free(c->workspace);
    free(c->user);
    free(c->image);
    free(c->ports);
    strv_free(&c->volumes);
    free(c->network);
    free(c->node_name);
    free(c->cookie);
    strv_free(&c->code_paths);
    strv_free(&c->apps);
    strv_free(&c->erl_args);
    free(c->raw);
    memset(c, 0, sizeof *c);
}

/* ---- exec options -------------------------------------------------------------------- */

enum { X_TIMEOUT_MS, X_ENV, X_CWD, X_STDIN, X_MAX_OUTPUT_BYTES, X_COUNT };

static const struct key_def EXEC_KEYS[X_COUNT] = {
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
    struct key_pos pos[X_COUNT];
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
    if (scan_map(buf, &end, "opts", EXEC_KEYS, X_COUNT, 1, pos, err) != 0)
        goto err;
    if ((i = pos[X_TIMEOUT_MS].val) >= 0) {
        if (get_int(buf, &i, "timeout_ms", 1, DAY_MS, &v, err) != 0)
            goto err;
        o.timeout_ms = v;
    }
    if ((i = pos[X_ENV].val) >= 0 && get_kvv(buf, &i, "env", &ENV_RULES, &o.env, err) != 0)
        goto err;
    if ((i = pos[X_CWD].val) >= 0 &&
        get_nonempty(buf, &i, "cwd", 0, PATH_LEN_MAX, &o.cwd, err) != 0)
        goto err;
    if ((i = pos[X_STDIN].val) >= 0 &&
        get_string(buf, &i, STR_NUL, STDIN_LEN_MAX, &o.stdin_data, &o.stdin_len, &why) != 0) {
        fail(err, "stdin", why);
        goto err;
    }
    if ((i = pos[X_MAX_OUTPUT_BYTES].val) >= 0) {
        if (get_int(buf, &i, "max_output_bytes", 0, OUTPUT_MAX, &v, err) != 0)
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
    kvv_free(&o->env);
    free(o->cwd);
    free(o->stdin_data);
    memset(o, 0, sizeof *o);
}

/* ---- list filters -------------------------------------------------------------------- */

enum { F_TYPE, F_STATUS, F_LABELS, F_COUNT };

static const struct key_def FILTER_KEYS[F_COUNT] = {
    [F_TYPE] = {"type", 1},
    [F_STATUS] = {"status", 1},
    [F_LABELS] = {"labels", 1},
};

/* In the order of enum sbx_status (core/sandbox.h). */
static const char *const STATUS_NAMES[] = {"starting", "running", "stopping",
                                           "stopped",  "exited",  "error"};

/* On success *out owns its labels (sbx_list_filter_free); on failure it is left zeroed.
 * buf NULL: no filter. */
int sbx_list_filter_decode(const char *buf, int *idx, struct sbx_list_filter *out,
                           struct sbx_badarg *err) {
    struct sbx_list_filter f;
    struct key_pos pos[F_COUNT];
    int end, i, k = 0;

    memset(&f, 0, sizeof f);
    memset(out, 0, sizeof *out);
    f.status = -1;
    if (buf == NULL)
        goto done;
    end = *idx;
    if (scan_map(buf, &end, "filter", FILTER_KEYS, F_COUNT, 1, pos, err) != 0)
        goto err;
    if ((i = pos[F_TYPE].val) >= 0) {
        if (get_enum(buf, &i, "type", TYPE_NAMES, 4, &k, err) != 0)
            goto err;
        f.has_type = 1;
        f.type = (enum sbx_type)k;
    }
    if ((i = pos[F_STATUS].val) >= 0) {
        if (get_enum(buf, &i, "status", STATUS_NAMES, 6, &k, err) != 0)
            goto err;
        f.status = k;
    }
    if ((i = pos[F_LABELS].val) >= 0 &&
        get_kvv(buf, &i, "labels", &LABEL_RULES, &f.labels, err) != 0)
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
    kvv_free(&f->labels);
    memset(f, 0, sizeof *f);
}

/* ---- log options --------------------------------------------------------------------- */

enum { L_TAIL, L_SINCE, L_COUNT };

static const struct key_def LOGS_KEYS[L_COUNT] = {
    [L_TAIL] = {"tail", 1},
    [L_SINCE] = {"since", 1},
};

/* *out is the caller's; nothing is allocated. buf NULL: the defaults. */
int sbx_logs_opts_decode(const char *buf, int *idx, struct sbx_logs_opts *out,
                         struct sbx_badarg *err) {
    struct sbx_logs_opts o = {100, 0};
    struct key_pos pos[L_COUNT];
    long long v;
    int end, i;

    memset(out, 0, sizeof *out);
    if (buf == NULL)
        goto done;
    end = *idx;
    if (scan_map(buf, &end, "opts", LOGS_KEYS, L_COUNT, 1, pos, err) != 0)
        goto err;
    if ((i = pos[L_TAIL].val) >= 0) {
        if (get_int(buf, &i, "tail", 0, 100000, &v, err) != 0)
            goto err;
        o.tail = (size_t)v;
    }
    if ((i = pos[L_SINCE].val) >= 0) {
        if (get_int(buf, &i, "since", 0, INT64_MAX, &v, err) != 0)
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
    int r = list_open(buf, &i, &arity);

    *out = 0;
    if (r == 1) {
        fail(err, "topics", WHY_UNKNOWN_VALUE); /* a list of small integers */
        return -1;
    }
    if (r != 0) {
        fail(err, "topics", WHY_NOT_A_LIST);
        return -1;
    }
    if (arity == 0) {
        fail(err, "topics", WHY_EMPTY);
        return -1;
    }
    for (int e = 0; e < arity; e++) {
        if (get_enum(buf, &i, "topics", TOPIC_NAMES, 5, &k, err) != 0)
            return -1;
        bits |= 1u << k;
    }
    if (list_close(buf, &i, arity) != 0) {
        fail(err, "topics", WHY_NOT_A_LIST);
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
    if (get_string(buf, &i, 0, REL_PATH_MAX, &s, &len, &why) != 0)
        goto err;
    if (len == 0) {
        why = WHY_EMPTY;
        goto err;
    }
    int abs = s[0] == '/';
    if (abs && !allow_abs) {
        why = WHY_ABSOLUTE;
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
            why = WHY_DOT_DOT;
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
        why = WHY_EMPTY; /* "." or "./" names the workspace itself */
        goto err;
    }
    if (w + 1 > cap) {
        why = WHY_TOO_LONG;
        goto err;
    }
    memcpy(out, s, w);
    out[w] = '\0';
    free(s);
    *idx = i;
    return 0;
err:
    free(s);
    fail(err, "path", why);
    return -1;
}
