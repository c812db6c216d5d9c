/* External term format walker with explicit bounds and an explicit stack. */
#include "dist/term_check.h"

#include <stdint.h>

enum {
    TAG_NEW_FLOAT = 70, TAG_BIT_BINARY = 77, TAG_NEW_PID = 88, TAG_NEW_PORT = 89,
    TAG_NEWER_REF = 90, TAG_SMALL_INT = 97, TAG_INT = 98, TAG_FLOAT = 99, TAG_ATOM = 100,
    TAG_REF = 101, TAG_PORT = 102, TAG_PID = 103, TAG_SMALL_TUPLE = 104,
    TAG_LARGE_TUPLE = 105, TAG_NIL = 106, TAG_STRING = 107, TAG_LIST = 108,
    TAG_BINARY = 109, TAG_SMALL_BIG = 110, TAG_LARGE_BIG = 111, TAG_NEW_FUN = 112,
    TAG_EXPORT = 113, TAG_NEW_REF = 114, TAG_SMALL_ATOM = 115, TAG_MAP = 116,
    TAG_ATOM_UTF8 = 118, TAG_SMALL_ATOM_UTF8 = 119, TAG_V4_PORT = 120
};

/* Reads a big-endian 32-bit value; the caller has checked (NEED) that 4 bytes are there. */
static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads a big-endian 16-bit value; the caller has checked (NEED) that 2 bytes are there. */
static uint16_t be16(const unsigned char *p) { return (uint16_t)(p[0] << 8 | p[1]); }

/* Is there room for n more bytes at pos? */
#define NEED(n)                                                                          \
    do {                                                                                 \
        if ((uint64_t)(n) > (uint64_t)(len - pos))                                       \
            return -1;                                                                   \
    } while (0)

/* Checks an atom (any atom tag) at pos; advances pos. Atoms are at most 255 characters,
 * so 1020 bytes in UTF-8; ei's buffers are sized for that. */
static int check_atom(const unsigned char *buf, size_t len, size_t *ppos) {
    size_t pos = *ppos;
    size_t n;
    NEED(1);
    unsigned char tag = buf[pos++];
    if (tag == TAG_ATOM || tag == TAG_ATOM_UTF8) {
        NEED(2);
        n = be16(buf + pos);
        pos += 2;
    } else if (tag == TAG_SMALL_ATOM || tag == TAG_SMALL_ATOM_UTF8) {
        NEED(1);
        n = buf[pos++];
    } else {
        return -1;
    }
    /* 255 characters: 255 bytes of Latin-1 (up to 510 once ei converts them to UTF-8),
     * or up to 1020 bytes of UTF-8. */
    if (n > ((tag == TAG_ATOM || tag == TAG_SMALL_ATOM) ? 255 : 255 * 4))
        return -1;
    NEED(n);
    *ppos = pos + n;
    return 0;
}

/* Checks a pid (old or new form) at pos; advances pos. */
static int check_pid(const unsigned char *buf, size_t len, size_t *ppos) {
    size_t pos = *ppos;
    NEED(1);
    unsigned char tag = buf[pos++];
    if (tag != TAG_PID && tag != TAG_NEW_PID)
        return -1;
    if (check_atom(buf, len, &pos) != 0)
        return -1;
    size_t rest = tag == TAG_PID ? 9 : 12;
    NEED(rest);
    *ppos = pos + rest;
    return 0;
}

/* Checks a small integer or integer (used inside funs); advances pos. */
static int check_int(const unsigned char *buf, size_t len, size_t *ppos) {
    size_t pos = *ppos;
    NEED(1);
    unsigned char tag = buf[pos++];
    size_t n = tag == TAG_SMALL_INT ? 1 : tag == TAG_INT ? 4 : 0;
    if (n == 0)
        return -1;
    NEED(n);
    *ppos = pos + n;
    return 0;
}

/* Funs nest through their free variables by recursion: at most this deep. */
#define MAX_FUN_DEPTH 8

/* Checks `count` consecutive terms in buf[0..len) that sit `base` levels deep; sets
 * *used to their total size. */
static int check_terms(const unsigned char *buf, size_t len, uint32_t count, int fun_depth,
                       int base, size_t *used) {
    /* pending[d - base] = how many terms are still to be read at depth d. */
    uint32_t pending[SBX_TERM_MAX_DEPTH + 1];
    int depth = base;
    size_t pos = 0;
    size_t n;

    if (base > SBX_TERM_MAX_DEPTH)
        return -1;
    pending[0] = count;
    while (depth >= base) {
        if (pending[depth - base] == 0) {
            depth--;
            continue;
        }
        pending[depth - base]--;
        NEED(1);
        unsigned char tag = buf[pos];
        uint64_t children = 0;
        switch (tag) {
        case TAG_SMALL_INT: NEED(2); pos += 2; break;
        case TAG_INT: NEED(5); pos += 5; break;
        case TAG_NEW_FLOAT: NEED(9); pos += 9; break;
        /* FLOAT_EXT (99, text parsed by sscanf in ei) is refused: peers that have the
         * mandatory NEW_FLOATS flag never send it. */
        case TAG_ATOM: case TAG_ATOM_UTF8: case TAG_SMALL_ATOM: case TAG_SMALL_ATOM_UTF8:
            if (check_atom(buf, len, &pos) != 0)
                return -1;
            break;
        case TAG_NIL: pos += 1; break;
        case TAG_STRING:
            NEED(3);
            n = be16(buf + pos + 1);
            pos += 3;
            NEED(n);
            pos += n;
            break;
        case TAG_BINARY:
            NEED(5);
            n = be32(buf + pos + 1);
            pos += 5;
            NEED(n);
            pos += n;
            break;
        case TAG_BIT_BINARY:
            NEED(6);
            n = be32(buf + pos + 1);
            if (buf[pos + 5] < 1 || buf[pos + 5] > 8 || n == 0)
                return -1;
            pos += 6;
            NEED(n);
            pos += n;
            break;
        case TAG_SMALL_BIG:
            NEED(3);
            n = buf[pos + 1];
            pos += 3;
            NEED(n);
            pos += n;
            break;
        case TAG_LARGE_BIG:
            NEED(6);
            n = be32(buf + pos + 1);
            pos += 6;
            NEED(n);
            pos += n;
            break;
        case TAG_PID: case TAG_NEW_PID:
            if (check_pid(buf, len, &pos) != 0)
                return -1;
            break;
        case TAG_PORT: case TAG_NEW_PORT: case TAG_V4_PORT:
            pos += 1;
            if (check_atom(buf, len, &pos) != 0)
                return -1;
            n = tag == TAG_PORT ? 5 : tag == TAG_NEW_PORT ? 8 : 12;
            NEED(n);
            pos += n;
            break;
        case TAG_REF:
            pos += 1;
            if (check_atom(buf, len, &pos) != 0)
                return -1;
            NEED(5);
            pos += 5;
            break;
        case TAG_NEW_REF: case TAG_NEWER_REF:
            NEED(3);
            n = be16(buf + pos + 1);
            if (n < 1 || n > 5)
                return -1;
            pos += 3;
            if (check_atom(buf, len, &pos) != 0)
                return -1;
            n = (tag == TAG_NEW_REF ? 1 : 4) + 4 * n;
            NEED(n);
            pos += n;
            break;
        case TAG_SMALL_TUPLE:
            NEED(2);
            children = buf[pos + 1];
            pos += 2;
            break;
        case TAG_LARGE_TUPLE:
            NEED(5);
            children = be32(buf + pos + 1);
            pos += 5;
            break;
        case TAG_LIST:
            NEED(5);
            children = (uint64_t)be32(buf + pos + 1) + 1; /* elements and the tail */
            pos += 5;
            break;
        case TAG_MAP:
            NEED(5);
            children = (uint64_t)be32(buf + pos + 1) * 2;
            pos += 5;
            break;
        case TAG_EXPORT:
            pos += 1;
            if (check_atom(buf, len, &pos) != 0 || check_atom(buf, len, &pos) != 0 ||
                check_int(buf, len, &pos) != 0)
                return -1;
            break;
        case TAG_NEW_FUN: {
            /* Size (which counts itself), Arity, Uniq[16], Index, NumFree, Module,
             * OldIndex, OldUniq, Pid, then NumFree terms: ei skips the fun by Size, so
             * the free terms must end exactly where Size says. */
            NEED(1 + 4 + 1 + 16 + 4 + 4);
            size_t start = pos;
            size_t size = be32(buf + pos + 1);
            uint32_t nfree = be32(buf + pos + 1 + 4 + 1 + 16 + 4);
            if (size > len - start - 1 || fun_depth >= MAX_FUN_DEPTH)
                return -1;
            size_t end = start + 1 + size;
            pos += 1 + 4 + 1 + 16 + 4 + 4;
            if (pos > end || check_atom(buf, end, &pos) != 0 || check_int(buf, end, &pos) != 0 ||
                check_int(buf, end, &pos) != 0 || check_pid(buf, end, &pos) != 0)
                return -1;
            size_t free_used = 0;
            if (nfree > 0 && check_terms(buf + pos, end - pos, nfree, fun_depth + 1, depth + 1,
                                         &free_used) != 0)
                return -1;
            if (pos + free_used != end)
                return -1;
            pos = end;
            break;
        }
        default:
            return -1; /* atom cache refs, compressed terms, local terms, unknown */
        }
        if (children > 0) {
            if (children > len - pos + 1) /* every child needs at least one byte */
                return -1;
            if (depth >= SBX_TERM_MAX_DEPTH)
                return -1;
            depth++;
            pending[depth - base] = (uint32_t)children;
        }
    }
    *used = pos;
    return 0;
}

/* See term_check.h. Bounded stack use: depth is tracked in an array, and
 * recursion happens only into fun free variables, at most MAX_FUN_DEPTH deep. */
int sbx_term_check(const unsigned char *buf, size_t len, size_t *used) {
    return check_terms(buf, len, 1, 0, 0, used);
}
