/* The term-decoding toolkit that every argument decoder is built from: the core's
 * (core/config.c) and each backend's own config keys (backends/NAME/NAME_config.c).
 *
 * Every decoder reads a term that dist/term_check.h has already bounds-checked. On a bad
 * argument it names the field and why with static atom names (struct sbx_badarg, for
 * {error, {badarg, Field, Why}}), allocates nothing, and leaves *idx where it was. On
 * success *idx is past the term and what *out holds is the caller's. */
#ifndef SBX_CORE_TERM_DECODE_H
#define SBX_CORE_TERM_DECODE_H

#include <stddef.h>

#include "core/config.h"

/* Byte limits shared by several decoders. */
#define SBX_TD_PATH_MAX 4096u        /* a path: cwd, workspace, http path, backend paths */
#define SBX_TD_NAME_MAX 255u         /* node names, cookies, networks */
#define SBX_TD_ARG_MAX  (64u * 1024u) /* one argv element, or a shell command */
#define SBX_TD_NAME_CAP 32           /* longer than every key or enum name we know */

/* The Why atoms (compare by pointer or by text). */
extern const char SBX_WHY_NOT_AN_INTEGER[], SBX_WHY_NOT_A_NUMBER[], SBX_WHY_OUT_OF_RANGE[],
    SBX_WHY_NOT_A_STRING[], SBX_WHY_NOT_A_MAP[], SBX_WHY_NOT_A_LIST[], SBX_WHY_NOT_A_PID[],
    SBX_WHY_UNKNOWN_VALUE[], SBX_WHY_MISSING[], SBX_WHY_UNKNOWN_KEY[], SBX_WHY_DUPLICATE_KEY[],
    SBX_WHY_BAD_KEY[], SBX_WHY_TOO_LONG[], SBX_WHY_TOO_MANY[], SBX_WHY_CONTAINS_NUL[],
    SBX_WHY_EMPTY[], SBX_WHY_INVALID_CHARACTERS[], SBX_WHY_NOT_ABSOLUTE[], SBX_WHY_ABSOLUTE[],
    SBX_WHY_DOT_DOT[], SBX_WHY_NO_MEMORY[];

/* The tag byte of the term at buf[idx]; whether a tag is an integer's (small, 32-bit, big). */
unsigned char sbx_td_tag(const char *buf, int idx);
int sbx_td_is_int(unsigned char t);

/* Sets *err (may be NULL) to {field, why}; _key names the map key buf[start..end) as sent
 * instead (err->field_term points into buf). */
void sbx_td_fail(struct sbx_badarg *err, const char *field, const char *why);
void sbx_td_fail_key(struct sbx_badarg *err, const char *field, const char *buf, int start,
                     int end, const char *why);

/* A malloc'd copy of s[0..n) plus a NUL, the caller's; NULL when out of memory. */
char *sbx_td_dup(const char *s, size_t n);

/* String flags. */
#define SBX_TD_ATOM 1u /* an atom counts as a string */
#define SBX_TD_NUL  2u /* NUL bytes are data (stdin), not an error */

/* A string (binary, charlist, and an atom with SBX_TD_ATOM) of at most max bytes into a
 * fresh NUL-terminated *out of *out_len bytes. NUL bytes are refused unless SBX_TD_NUL.
 * -1 with *why (not_a_string, too_long, contains_nul, no_memory). */
int sbx_td_string(const char *buf, int *idx, unsigned flags, size_t max, char **out,
                  size_t *out_len, const char **why);
/* As sbx_td_string, refusing "" too, reporting {field, Why}; *out NULL on failure. */
int sbx_td_nonempty(const char *buf, int *idx, const char *field, unsigned flags, size_t max,
                    char **out, struct sbx_badarg *err);
/* Checks a non-empty string and keeps nothing. */
int sbx_td_check_string(const char *buf, int *idx, const char *field, unsigned flags,
                        size_t max, struct sbx_badarg *err);

/* An atom or binary as a key or enum name into out (cap bytes): 1 when it fits, is ASCII
 * and has no NUL; 0 when it cannot match any name we know (out ""); -1 when it is neither
 * atom nor binary (nothing read). Advances *idx unless -1. */
int sbx_td_name(const char *buf, int *idx, char *out, size_t cap);
/* An enum value: an atom or binary from names[0..n) into *out (its index); else
 * {field, unknown_value}. */
int sbx_td_enum(const char *buf, int *idx, const char *field, const char *const *names,
                size_t n, int *out, struct sbx_badarg *err);

/* An integer in lo..hi ({field, not_an_integer | out_of_range}); a number (integer or
 * float) with lo < v <= hi ({field, not_a_number | out_of_range}). */
int sbx_td_int(const char *buf, int *idx, const char *field, long long lo, long long hi,
               long long *out, struct sbx_badarg *err);
int sbx_td_number(const char *buf, int *idx, const char *field, double lo, double hi,
                  double *out, struct sbx_badarg *err);

/* Opens a list: 0 with *arity for [] or a LIST_EXT (*idx at the first element), 1 for a
 * STRING_EXT (nothing read), -1 otherwise. Close after arity elements: the tail must be []. */
int sbx_td_list_open(const char *buf, int *idx, int *arity);
int sbx_td_list_close(const char *buf, int *idx, int arity);

/* Free what a vector owns, and zero it. */
void sbx_td_strv_free(struct sbx_strv *v);
void sbx_td_kvv_free(struct sbx_kvv *v);

/* A proper list of at most 256 non-empty strings (flags as sbx_td_string) of at most max
 * bytes each. */
int sbx_td_string_list(const char *buf, int *idx, const char *field, unsigned flags,
                       size_t max, struct sbx_strv *out, struct sbx_badarg *err);

/* Rules for a map of strings to strings (env, labels). */
struct sbx_td_kv_rules {
    unsigned key_flags;
    size_t key_max, value_max, count_max;
    int no_eq; /* keys may not contain '=' (env) */
};
/* Such a map into *out, sorted by key: not_a_map, too_many, the string reasons, empty
 * (a key), duplicate_key (keys equal once decoded). */
int sbx_td_kvv(const char *buf, int *idx, const char *field, const struct sbx_td_kv_rules *r,
               struct sbx_kvv *out, struct sbx_badarg *err);

/* A map key a decoder knows: its name, and which variants take it (a bit mask). */
struct sbx_td_key {
    const char *name;
    unsigned mask;
};
/* Where a key and its value sit in the buffer; key < 0: absent. */
struct sbx_td_pos {
    int key, key_end, val;
};
/* Walks the map at *idx, whose keys must be atoms or binaries naming defs[0..n) entries
 * whose mask meets allow, recording in pos[] where each key and value start. Errors:
 * {field, not_a_map}, {field, bad_key}, {Key, unknown_key | duplicate_key} (field_term). */
int sbx_td_scan_map(const char *buf, int *idx, const char *field, const struct sbx_td_key *defs,
                    size_t n, unsigned allow, struct sbx_td_pos *pos, struct sbx_badarg *err);

#endif
