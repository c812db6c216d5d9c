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

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

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
    if (n > 255 * 4)
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

int sbx_term_check(const unsigned char *buf, size_t len, size_t *used) {
    /* pending[d] = how many terms are still to be read at depth d. */
    uint32_t pending[SBX_TERM_MAX_DEPTH + 1];
    int depth = 0;
    size_t pos = 0;
    size_t n;

    pending[0] = 1;
    while (depth >= 0) {
        if (pending[depth] == 0) {
            depth--;
            continue;
        }
        pending[depth]--;
        NEED(1);
        unsigned char tag = buf[pos];
        uint64_t children = 0;
        switch (tag) {
        case TAG_SMALL_INT: NEED(2); pos += 2; break;
        case TAG_INT: NEED(5); pos += 5; break;
        case TAG_NEW_FLOAT: NEED(9); pos += 9; break;
        case TAG_FLOAT: NEED(32); pos += 32; break;
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
            NEED(5);
            size_t size = be32(buf + pos + 1);
            size_t start = pos;
            /* Size, Arity, Uniq[16], Index, NumFree, Module, OldIndex, OldUniq, Pid, Free... */
            NEED(1 + 4 + 1 + 16 + 4 + 4);
            children = be32(buf + pos + 1 + 4 + 1 + 16 + 4);
            pos += 1 + 4 + 1 + 16 + 4 + 4;
            if (check_atom(buf, len, &pos) != 0 || check_int(buf, len, &pos) != 0 ||
                check_int(buf, len, &pos) != 0 || check_pid(buf, len, &pos) != 0)
                return -1;
            if (size < pos - start - 1 || size > len - start - 1)
                return -1;
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
            pending[++depth] = (uint32_t)children;
        }
    }
    *used = pos;
    return 0;
}
