/* The term-decoding toolkit behind every argument decoder (core/term_decode.h): strings,
 * numbers, enums, lists, string and key/value vectors, and maps with known keys.
 *
 * Every input has already been walked by dist/term_check.c, so the raw tag bytes can be
 * read and ei's decoders and ei_skip_term used without further bounds checks. Each decoder
 * builds into a local value and hands it over only on success; on failure one cleanup path
 * frees whatever had been built and the caller's *out is left empty and *idx untouched.
 *
 * Strings: a binary (bytes as they are), a charlist (a STRING_EXT or a proper list of
 * code points, stored UTF-8 encoded) and, where said, an atom (stored UTF-8 encoded).
 * Lengths are counted in bytes after that encoding. */
#include "core/term_decode.h"

#include <ei.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- why atoms ----------------------------------------------------------------------- */

const char SBX_WHY_NOT_AN_INTEGER[] = "not_an_integer";
const char SBX_WHY_NOT_A_NUMBER[] = "not_a_number";
const char SBX_WHY_OUT_OF_RANGE[] = "out_of_range";
const char SBX_WHY_NOT_A_STRING[] = "not_a_string";
const char SBX_WHY_NOT_A_MAP[] = "not_a_map";
const char SBX_WHY_NOT_A_LIST[] = "not_a_list";
const char SBX_WHY_NOT_A_PID[] = "not_a_pid";
const char SBX_WHY_UNKNOWN_VALUE[] = "unknown_value";
const char SBX_WHY_MISSING[] = "missing";
const char SBX_WHY_UNKNOWN_KEY[] = "unknown_key";
const char SBX_WHY_DUPLICATE_KEY[] = "duplicate_key";
const char SBX_WHY_BAD_KEY[] = "bad_key";
const char SBX_WHY_TOO_LONG[] = "too_long";
const char SBX_WHY_TOO_MANY[] = "too_many";
const char SBX_WHY_CONTAINS_NUL[] = "contains_nul";
const char SBX_WHY_EMPTY[] = "empty";
const char SBX_WHY_INVALID_CHARACTERS[] = "invalid_characters";
const char SBX_WHY_NOT_ABSOLUTE[] = "not_absolute";
const char SBX_WHY_ABSOLUTE[] = "absolute";
const char SBX_WHY_DOT_DOT[] = "dot_dot";
const char SBX_WHY_NO_MEMORY[] = "no_memory";

/* ---- small helpers ------------------------------------------------------------------- */

/* Borrows nothing, owns nothing: the tag byte of the term at idx. */
unsigned char sbx_td_tag(const char *buf, int idx) { return (unsigned char)buf[idx]; }

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
int sbx_td_is_int(unsigned char t) {
    return t == ERL_SMALL_INTEGER_EXT || t == ERL_INTEGER_EXT || t == ERL_SMALL_BIG_EXT ||
           t == ERL_LARGE_BIG_EXT;
}

/* err is the caller's; field and why are static strings. */
void sbx_td_fail(struct sbx_badarg *err, const char *field, const char *why) {
    if (err == NULL)
        return;
    err->field = field;
    err->why = why;
    err->field_term = NULL;
    err->field_term_len = 0;
}

/* As sbx_td_fail, naming the map key buf[start..end) as sent (a pointer into buf). */
void sbx_td_fail_key(struct sbx_badarg *err, const char *field, const char *buf, int start,
                     int end, const char *why) {
    sbx_td_fail(err, field, why);
    if (err == NULL)
        return;
    err->field_term = buf + start;
    err->field_term_len = (size_t)(end - start);
}

/* Returns a fresh malloc'd copy of s[0..n) plus a NUL, owned by the caller; NULL if out of
 * memory. */
char *sbx_td_dup(const char *s, size_t n) {
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


/* Converts latin-1 bytes p[0..n) (borrowed) to a fresh UTF-8 string in *out (the
 * caller's on success; nothing allocated on failure, with *why set). */
static int latin1_to_utf8(const char *p, size_t n, size_t max, char **out, size_t *out_len,
                          const char **why) {
    const unsigned char *u = (const unsigned char *)p;
    size_t len = 0;
    for (size_t k = 0; k < n; k++)
        len += u[k] < 0x80 ? 1 : 2;
    if (len > max) {
        *why = SBX_WHY_TOO_LONG;
        return -1;
    }
    unsigned char *s = malloc(len + 1);
    if (s == NULL) {
        *why = SBX_WHY_NO_MEMORY;
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
        *why = SBX_WHY_NOT_A_STRING;
        goto err;
    }
    if ((size_t)arity > max) {
        *why = SBX_WHY_TOO_LONG;
        goto err;
    }
    /* First pass: check every element and count the bytes. */
    int first = i;
    for (int k = 0; k < arity; k++) {
        unsigned char t = sbx_td_tag(buf, i);
        long cp;
        if ((t != ERL_SMALL_INTEGER_EXT && t != ERL_INTEGER_EXT) ||
            ei_decode_long(buf, &i, &cp) != 0 || cp < 0 || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            *why = SBX_WHY_NOT_A_STRING;
            goto err;
        }
        len += utf8_len((unsigned long)cp);
    }
    if (sbx_td_tag(buf, i) != ERL_NIL_EXT) {
        *why = SBX_WHY_NOT_A_STRING; /* improper list */
        goto err;
    }
    i++;
    if (len > max) {
        *why = SBX_WHY_TOO_LONG;
        goto err;
    }
    s = malloc(len + 1);
    if (s == NULL) {
        *why = SBX_WHY_NO_MEMORY;
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

/* Decodes the string at *idx (binary, charlist, and an atom with SBX_TD_ATOM) into a fresh
 * NUL-terminated copy in *out of *out_len bytes, owned by the caller on success. At most
 * max bytes; NUL bytes are refused unless flags has SBX_TD_NUL. On failure returns -1 with
 * *why set, nothing allocated, *out NULL and *idx unchanged. */
int sbx_td_string(const char *buf, int *idx, unsigned flags, size_t max, char **out,
                  size_t *out_len, const char **why) {
    int i = *idx;
    unsigned char t = sbx_td_tag(buf, i);
    char *s = NULL;
    size_t len = 0, n;

    *out = NULL;
    *out_len = 0;
    switch (t) {
    case ERL_BINARY_EXT:
        n = be32_at(buf + i + 1);
        if (n > max) {
            *why = SBX_WHY_TOO_LONG;
            goto err;
        }
        s = sbx_td_dup(buf + i + 5, n);
        len = n;
        if (s == NULL) {
            *why = SBX_WHY_NO_MEMORY;
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
        s = sbx_td_dup("", 0);
        if (s == NULL) {
            *why = SBX_WHY_NO_MEMORY;
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
        if (!(flags & SBX_TD_ATOM)) {
            *why = SBX_WHY_NOT_A_STRING;
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
                *why = SBX_WHY_TOO_LONG;
                goto err;
            }
            s = sbx_td_dup(p, n);
            len = n;
            if (s == NULL) {
                *why = SBX_WHY_NO_MEMORY;
                goto err;
            }
        }
        i = (int)(p - buf) + (int)n;
        break;
    }
    default:
        *why = SBX_WHY_NOT_A_STRING;
        goto err;
    }
    if (!(flags & SBX_TD_NUL) && len > 0 && memchr(s, '\0', len) != NULL) {
        *why = SBX_WHY_CONTAINS_NUL;
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

/* As sbx_td_string, also refusing the empty string, and reporting {field, Why} into err.
 * *out is the caller's on success, NULL on failure. */
int sbx_td_nonempty(const char *buf, int *idx, const char *field, unsigned flags,
                    size_t max, char **out, struct sbx_badarg *err) {
    const char *why = NULL;
    char *s = NULL;
    size_t len = 0;
    if (sbx_td_string(buf, idx, flags, max, &s, &len, &why) != 0)
        goto err;
    if (len == 0) {
        why = SBX_WHY_EMPTY;
        goto err;
    }
    *out = s;
    return 0;
err:
    free(s);
    *out = NULL;
    sbx_td_fail(err, field, why);
    return -1;
}

/* Checks a non-empty string at *idx and frees it again (for keys that later work
 * decodes). Owns nothing afterwards. */
int sbx_td_check_string(const char *buf, int *idx, const char *field, unsigned flags,
                        size_t max, struct sbx_badarg *err) {
    char *s = NULL;
    if (sbx_td_nonempty(buf, idx, field, flags, max, &s, err) != 0)
        return -1;
    free(s);
    return 0;
}

/* Reads an atom or binary at *idx as a key or enum name into out (the caller's, cap
 * bytes). Returns 1 when it fits, is ASCII and has no NUL; 0 when it is an atom or binary
 * that cannot match any name we know (out is then ""); -1 when it is neither (nothing
 * read). Advances *idx past the term unless -1. */
int sbx_td_name(const char *buf, int *idx, char *out, size_t cap) {
    int i = *idx;
    unsigned char t = sbx_td_tag(buf, i);
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
int sbx_td_enum(const char *buf, int *idx, const char *field, const char *const *names,
                size_t n, int *out, struct sbx_badarg *err) {
    char name[SBX_TD_NAME_CAP];
    int i = *idx;
    int k = sbx_td_name(buf, &i, name, sizeof name) == 1 ? find_name(name, names, n) : -1;
    if (k < 0) {
        sbx_td_fail(err, field, SBX_WHY_UNKNOWN_VALUE);
        return -1;
    }
    *out = k;
    *idx = i;
    return 0;
}

/* ---- numbers ------------------------------------------------------------------------- */

/* An integer in lo..hi at *idx into *out: {field, not_an_integer | out_of_range}. Owns
 * nothing. */
int sbx_td_int(const char *buf, int *idx, const char *field, long long lo, long long hi,
               long long *out, struct sbx_badarg *err) {
    int i = *idx;
    long long v;
    if (!sbx_td_is_int(sbx_td_tag(buf, i))) {
        sbx_td_fail(err, field, SBX_WHY_NOT_AN_INTEGER);
        return -1;
    }
    if (ei_decode_longlong(buf, &i, &v) != 0 || v < lo || v > hi) {
        sbx_td_fail(err, field, SBX_WHY_OUT_OF_RANGE); /* a bignum beyond 64 bits is out of range */
        return -1;
    }
    *out = v;
    *idx = i;
    return 0;
}

/* A number (integer or float) with lo < v <= hi: {field, not_a_number | out_of_range}.
 * Owns nothing. */
int sbx_td_number(const char *buf, int *idx, const char *field, double lo, double hi,
                  double *out, struct sbx_badarg *err) {
    int i = *idx;
    unsigned char t = sbx_td_tag(buf, i);
    double v;
    if (sbx_td_is_int(t)) {
        long long n;
        if (ei_decode_longlong(buf, &i, &n) != 0) {
            sbx_td_fail(err, field, SBX_WHY_OUT_OF_RANGE);
            return -1;
        }
        v = (double)n;
    } else if (t == NEW_FLOAT_EXT || t == ERL_FLOAT_EXT) {
        if (ei_decode_double(buf, &i, &v) != 0) {
            sbx_td_fail(err, field, SBX_WHY_NOT_A_NUMBER);
            return -1;
        }
    } else {
        sbx_td_fail(err, field, SBX_WHY_NOT_A_NUMBER);
        return -1;
    }
    if (!isfinite(v) || !(v > lo) || v > hi) {
        sbx_td_fail(err, field, SBX_WHY_OUT_OF_RANGE);
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
int sbx_td_list_open(const char *buf, int *idx, int *arity) {
    unsigned char t = sbx_td_tag(buf, *idx);
    if (t == ERL_STRING_EXT)
        return 1;
    if (t != ERL_NIL_EXT && t != ERL_LIST_EXT)
        return -1;
    if (ei_decode_list_header(buf, idx, arity) != 0)
        return -1;
    return 0;
}

/* Closes a list opened by sbx_td_list_open after arity elements: the tail must be [] (always
 * true for an empty list, which has no tail). Owns nothing. */
int sbx_td_list_close(const char *buf, int *idx, int arity) {
    if (arity == 0)
        return 0;
    if (sbx_td_tag(buf, *idx) != ERL_NIL_EXT)
        return -1;
    *idx += 1;
    return 0;
}

/* ---- string vectors and key/value vectors ------------------------------------------- */

/* Frees what v owns and zeroes it. */
void sbx_td_strv_free(struct sbx_strv *v) {
    if (v->v != NULL)
        for (size_t k = 0; k < v->n; k++)
            free(v->v[k]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

/* Frees what v owns and zeroes it. */
void sbx_td_kvv_free(struct sbx_kvv *v) {
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

/* A map of strings to strings at *idx into *out (owned by the caller on success, sorted by
 * key; on failure *out is left empty). Errors name field: not_a_map, too_many, and the
 * string reasons for keys and values; an empty key is empty, keys equal after decoding
 * (a binary and a charlist with the same text) are duplicate_key. */
int sbx_td_kvv(const char *buf, int *idx, const char *field, const struct sbx_td_kv_rules *r,
               struct sbx_kvv *out, struct sbx_badarg *err) {
    struct sbx_kvv v = {0, NULL};
    int i = *idx, arity = 0;
    const char *why = NULL;
    size_t len;

    memset(out, 0, sizeof *out);
    if (sbx_td_tag(buf, i) != ERL_MAP_EXT || ei_decode_map_header(buf, &i, &arity) != 0) {
        why = SBX_WHY_NOT_A_MAP;
        goto err;
    }
    if ((size_t)arity > r->count_max) {
        why = SBX_WHY_TOO_MANY;
        goto err;
    }
    if (arity > 0) {
        v.v = calloc((size_t)arity, sizeof *v.v);
        if (v.v == NULL) {
            why = SBX_WHY_NO_MEMORY;
            goto err;
        }
    }
    for (int k = 0; k < arity; k++) {
        struct sbx_kv *kv = &v.v[v.n];
        if (sbx_td_string(buf, &i, r->key_flags, r->key_max, &kv->key, &len, &why) != 0)
            goto err;
        v.n++; /* from here on kv is freed with v */
        if (len == 0) {
            why = SBX_WHY_EMPTY;
            goto err;
        }
        if (r->no_eq && memchr(kv->key, '=', len) != NULL) {
            why = SBX_WHY_INVALID_CHARACTERS;
            goto err;
        }
        if (sbx_td_string(buf, &i, 0, r->value_max, &kv->value, &len, &why) != 0)
            goto err;
    }
    if (v.n > 1) {
        qsort(v.v, v.n, sizeof *v.v, kv_cmp);
        for (size_t k = 1; k < v.n; k++)
            if (strcmp(v.v[k - 1].key, v.v[k].key) == 0) {
                why = SBX_WHY_DUPLICATE_KEY;
                goto err;
            }
    }
    *out = v;
    *idx = i;
    return 0;
err:
    sbx_td_kvv_free(&v);
    sbx_td_fail(err, field, why);
    return -1;
}

/* ---- maps with known keys ------------------------------------------------------------ */

/* Walks the map at *idx, whose keys must be atoms or binaries naming defs[0..n) entries
 * whose mask meets allow. Records in pos[] where each key and value start. Errors:
 * {field, not_a_map}, {field, bad_key}, and {Key, unknown_key | duplicate_key} with Key
 * as sent (field_term). Advances *idx past the map on success. Owns nothing. */
int sbx_td_scan_map(const char *buf, int *idx, const char *field, const struct sbx_td_key *defs,
                    size_t n, unsigned allow, struct sbx_td_pos *pos, struct sbx_badarg *err) {
    int i = *idx, arity = 0;

    for (size_t k = 0; k < n; k++)
        pos[k].key = pos[k].key_end = pos[k].val = -1;
    if (sbx_td_tag(buf, i) != ERL_MAP_EXT || ei_decode_map_header(buf, &i, &arity) != 0) {
        sbx_td_fail(err, field, SBX_WHY_NOT_A_MAP);
        return -1;
    }
    for (int e = 0; e < arity; e++) {
        char name[SBX_TD_NAME_CAP];
        int ks = i;
        int r = sbx_td_name(buf, &i, name, sizeof name);
        if (r < 0) {
            sbx_td_fail(err, field, SBX_WHY_BAD_KEY);
            return -1;
        }
        int k = r == 1 ? -1 : -2;
        for (size_t d = 0; r == 1 && d < n; d++)
            if (strcmp(name, defs[d].name) == 0 && (defs[d].mask & allow) != 0)
                k = (int)d;
        if (k < 0) {
            sbx_td_fail_key(err, field, buf, ks, i, SBX_WHY_UNKNOWN_KEY);
            return -1;
        }
        if (pos[k].key >= 0) {
            sbx_td_fail_key(err, field, buf, ks, i, SBX_WHY_DUPLICATE_KEY); /* cmd and <<"cmd">> */
            return -1;
        }
        pos[k].key = ks;
        pos[k].key_end = i;
        pos[k].val = i;
        if (ei_skip_term(buf, &i) != 0) {
            sbx_td_fail(err, field, SBX_WHY_NOT_A_MAP);
            return -1;
        }
    }
    *idx = i;
    return 0;
}

/* ---- type-specific keys checked for shape only --------------------------------------- */

/* A proper list of non-empty strings (atoms too with SBX_TD_ATOM), at most max bytes each
 * and at most 256 of them, into *out (the caller's on success, zeroed on failure). */
int sbx_td_string_list(const char *buf, int *idx, const char *field, unsigned flags,
                       size_t max, struct sbx_strv *out, struct sbx_badarg *err) {
    struct sbx_strv v = {0, NULL};
    int i = *idx, arity = 0;
    int r = sbx_td_list_open(buf, &i, &arity);
    if (r != 0) {
        sbx_td_fail(err, field, r == 1 ? SBX_WHY_NOT_A_STRING : SBX_WHY_NOT_A_LIST);
        goto err;
    }
    if (arity > 256) {
        sbx_td_fail(err, field, SBX_WHY_TOO_MANY);
        goto err;
    }
    v.v = calloc((size_t)arity + 1, sizeof *v.v);
    if (v.v == NULL) {
        sbx_td_fail(err, field, SBX_WHY_NO_MEMORY);
        goto err;
    }
    for (int k = 0; k < arity; k++) {
        if (sbx_td_nonempty(buf, &i, field, flags, max, &v.v[k], err) != 0)
            goto err;
        v.n++;
    }
    if (sbx_td_list_close(buf, &i, arity) != 0) {
        sbx_td_fail(err, field, SBX_WHY_NOT_A_LIST);
        goto err;
    }
    *out = v;
    *idx = i;
    return 0;
err:
    sbx_td_strv_free(&v);
    memset(out, 0, sizeof *out);
    return -1;
}

