/* libFuzzer target over the distribution layer's pure parsers.
 *
 * The first input byte selects a mode (its low two bits) and a few options (the others);
 * the remaining bytes are the input of that mode:
 *   0  sbx_term_check, then ei on what it accepted: ei_skip_term must accept the same
 *      bytes and agree on the length, and a full decode walk must not crash;
 *   1  a byte stream of length-prefixed packets (sbx_frame_peek), each data packet
 *      split (sbx_frame_split) and its terms handed to ei as the node would;
 *   2  every handshake parser over the same body, round-tripped through the encoders;
 *   3  the epmd reply parsers and the PORT_PLEASE2 encoder.
 *
 * libei.a is not built with sanitizers, so ASan cannot see ei reading past a term.
 * Every buffer given to ei is therefore copied to end exactly at a PROT_NONE region:
 * any read past the term faults. The parsers under test are instrumented and get
 * exact-size heap copies, where ASan sees every stray read.
 *
 * A broken invariant prints "INVARIANT:" and aborts, which libFuzzer records as a crash. */
#include <ei.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dist/epmd.h"
#include "dist/frame.h"
#include "dist/handshake.h"
#include "dist/term_check.h"

#define GUARD_DATA ((size_t)1 << 20) /* largest buffer handed to ei */
#define GUARD_SIZE ((size_t)1 << 20) /* unreadable bytes after it */

static unsigned char *guard_end; /* first unreadable byte */

/* SBX_FUZZ_IGNORE_KNOWN=1: terms showing one of the known c_src bugs (term_check.c; see
 * test/c/test_term_check.c test_bug_*) are not handed to ei, so that a run spends its
 * time looking for new bugs instead of finding those again every second. */
static int ignore_known;

static void fail(const char *what) {
    fprintf(stderr, "INVARIANT: %s\n", what);
    abort();
}

static uint32_t be16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    if (ei_init() != 0)
        fail("ei_init");
    const char *env = getenv("SBX_FUZZ_IGNORE_KNOWN");
    ignore_known = env != NULL && env[0] == '1';
    unsigned char *base = mmap(NULL, GUARD_DATA + GUARD_SIZE, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        fail("mmap");
    if (mprotect(base + GUARD_DATA, GUARD_SIZE, PROT_NONE) != 0)
        fail("mprotect");
    guard_end = base + GUARD_DATA;
    return 0;
}

/* src[0..len) copied so that its last byte is the last readable one; NULL if too big. */
static const char *guarded(const void *src, size_t len) {
    if (len > GUARD_DATA)
        return NULL;
    unsigned char *dst = guard_end - len;
    if (len > 0)
        memcpy(dst, src, len);
    return (const char *)dst;
}

/* Exact-size heap copy (ASan sees reads past len). */
static unsigned char *dup_exact(const unsigned char *src, size_t len) {
    unsigned char *c = malloc(len > 0 ? len : 1);
    if (c == NULL)
        fail("malloc");
    if (len > 0)
        memcpy(c, src, len);
    return c;
}

/* ---- mode 0: terms ---------------------------------------------------------------------- */

/* Decodes one term with ei's value decoders (ei_decode_ei_term and the type-specific
 * ones), descending into containers. 0 with *idx past the term, or -1. */
static int walk(const char *b, int *idx, int depth) {
    if (depth > SBX_TERM_MAX_DEPTH + 1)
        fail("walk went deeper than sbx_term_check allows");
    int save = *idx;
    unsigned char tag = (unsigned char)b[*idx];
    ei_term t;
    memset(&t, 0, sizeof t);
    int r = ei_decode_ei_term(b, idx, &t);
    if (r == 1) {
        long n = 0;
        switch (tag) {
        case ERL_SMALL_TUPLE_EXT:
        case ERL_LARGE_TUPLE_EXT: n = t.arity; break;
        case ERL_LIST_EXT: n = (long)t.arity + 1; break; /* and the tail */
        case ERL_MAP_EXT: n = 2 * (long)t.arity; break;
        default: return 0; /* a scalar, decoded */
        }
        for (long i = 0; i < n; i++)
            if (walk(b, idx, depth + 1) != 0)
                return -1;
        return 0;
    }
    *idx = save;
    int type = 0, size = 0;
    ei_get_type(b, idx, &type, &size);
    switch (tag) {
    case ERL_STRING_EXT: {
        char *s = malloc((size_t)size + 1);
        if (s == NULL)
            fail("malloc");
        int rc = ei_decode_string(b, idx, s);
        if (rc == 0 && strnlen(s, (size_t)size + 1) > (size_t)size)
            fail("ei_decode_string wrote an unterminated string");
        free(s);
        return rc;
    }
    case ERL_BINARY_EXT: {
        void *p = malloc(size > 0 ? (size_t)size : 1);
        long len = -1;
        if (p == NULL)
            fail("malloc");
        int rc = ei_decode_binary(b, idx, p, &len);
        free(p);
        if (rc == 0 && len != size)
            fail("binary length differs between ei_get_type and ei_decode_binary");
        return rc;
    }
    case ERL_BIT_BINARY_EXT: {
        const char *p = NULL;
        unsigned int off = 0;
        size_t nbits = 0;
        return ei_decode_bitstring(b, idx, &p, &off, &nbits);
    }
    case ERL_SMALL_BIG_EXT:
    case ERL_LARGE_BIG_EXT: {
        erlang_big *big = ei_alloc_big((unsigned int)size);
        if (big == NULL)
            fail("ei_alloc_big");
        int rc = ei_decode_big(b, idx, big);
        ei_free_big(big);
        return rc;
    }
    case ERL_NEW_FUN_EXT:
    case ERL_EXPORT_EXT: {
        erlang_fun f;
        memset(&f, 0, sizeof f);
        int rc = ei_decode_fun(b, idx, &f);
        if (rc == 0)
            free_fun(&f);
        return rc;
    }
    default:
        return ei_skip_term(b, idx);
    }
}

/* Walks an atom at *pos of a term sbx_term_check accepted; flags a Latin-1 atom whose
 * UTF-8 form would not fit ei's 1020-byte buffers. */
static void known_atom(const unsigned char *b, size_t len, size_t *pos, int *hit) {
    if (*pos + 2 > len)
        return;
    unsigned char tag = b[*pos];
    size_t n;
    if (tag == 100 || tag == 118) {
        if (*pos + 3 > len)
            return;
        n = be16(b + *pos + 1);
        *pos += 3;
    } else {
        n = b[*pos + 1];
        *pos += 2;
    }
    if ((tag == 100 || tag == 115) && *pos + n <= len) {
        size_t utf8 = n;
        for (size_t i = 0; i < n; i++)
            utf8 += b[*pos + i] >> 7;
        if (utf8 > 1020)
            *hit = 1;
    }
    *pos += n;
}

/* Walks one term of b[0..len) (already accepted by sbx_term_check) from *pos and sets
 * *hit if it shows a known bug: a FLOAT_EXT anywhere, a NEW_FUN_EXT whose Size does not
 * end where its free variables do, or an oversized Latin-1 atom. */
static void known_term(const unsigned char *b, size_t len, size_t *pos, int *hit, int depth) {
    if (*hit || *pos >= len || depth > SBX_TERM_MAX_DEPTH + 1)
        return;
    unsigned char tag = b[*pos];
    size_t p = *pos, kids = 0;
    switch (tag) {
    case 97: *pos += 2; return;
    case 98: *pos += 5; return;
    case 70: *pos += 9; return;
    case 99: *hit = 1; return;
    case 100: case 115: case 118: case 119: known_atom(b, len, pos, hit); return;
    case 106: *pos += 1; return;
    case 107: *pos += 3 + (p + 3 <= len ? be16(b + p + 1) : 0); return;
    case 109: *pos += 5 + (p + 5 <= len ? be32(b + p + 1) : 0); return;
    case 77: *pos += 6 + (p + 5 <= len ? be32(b + p + 1) : 0); return;
    case 110: *pos += 3 + (p + 2 <= len ? b[p + 1] : 0); return;
    case 111: *pos += 6 + (p + 5 <= len ? be32(b + p + 1) : 0); return;
    case 103: case 88:
        *pos += 1;
        known_atom(b, len, pos, hit);
        *pos += tag == 103 ? 9 : 12;
        return;
    case 102: case 89: case 120:
        *pos += 1;
        known_atom(b, len, pos, hit);
        *pos += tag == 102 ? 5 : tag == 89 ? 8 : 12;
        return;
    case 101:
        *pos += 1;
        known_atom(b, len, pos, hit);
        *pos += 5;
        return;
    case 114: case 90: {
        size_t words = p + 3 <= len ? be16(b + p + 1) : 0;
        *pos += 3;
        known_atom(b, len, pos, hit);
        *pos += (tag == 114 ? 1 : 4) + 4 * words;
        return;
    }
    case 113:
        *pos += 1;
        known_atom(b, len, pos, hit);
        known_atom(b, len, pos, hit);
        if (*pos < len) /* Arity */
            *pos += b[*pos] == 98 ? 5 : 2;
        return;
    case 112: {
        if (p + 30 > len)
            return;
        size_t size = be32(b + p + 1), nfree = be32(b + p + 26);
        *pos += 30;
        known_atom(b, len, pos, hit);
        for (int i = 0; i < 2 && *pos < len; i++) /* OldIndex, OldUniq */
            *pos += b[*pos] == 98 ? 5 : 2;
        if (*pos >= len)
            return;
        unsigned char pid_tag = b[*pos];
        *pos += 1;
        known_atom(b, len, pos, hit);
        *pos += pid_tag == 103 ? 9 : 12;
        for (size_t i = 0; i < nfree && !*hit && *pos < len; i++)
            known_term(b, len, pos, hit, depth + 1);
        if (*pos - p - 1 != size)
            *hit = 1;
        return;
    }
    case 104: kids = p + 2 <= len ? b[p + 1] : 0; *pos += 2; break;
    case 105: kids = p + 5 <= len ? be32(b + p + 1) : 0; *pos += 5; break;
    case 108: kids = p + 5 <= len ? (size_t)be32(b + p + 1) + 1 : 0; *pos += 5; break;
    case 116: kids = p + 5 <= len ? 2 * (size_t)be32(b + p + 1) : 0; *pos += 5; break;
    default: *pos = len; return;
    }
    for (size_t i = 0; i < kids && !*hit && *pos < len; i++)
        known_term(b, len, pos, hit, depth + 1);
}

static int shows_known_bug(const unsigned char *term, size_t len) {
    size_t pos = 0;
    int hit = 0;
    known_term(term, len, &pos, &hit, 0);
    return hit;
}

/* ei over one term that sbx_term_check accepted with size len (no version byte). */
static void ei_agrees(const unsigned char *term, size_t len) {
    if (ignore_known && shows_known_bug(term, len))
        return;
    const char *g = guarded(term, len);
    if (g == NULL)
        return;
    int idx = 0;
    if (ei_skip_term(g, &idx) != 0)
        fail("ei_skip_term rejects a term sbx_term_check accepted");
    if ((size_t)idx != len)
        fail("ei_skip_term and sbx_term_check disagree on the term's length");
    idx = 0;
    if (walk(g, &idx, 0) == 0 && (size_t)idx != len)
        fail("decoding the term with ei ends elsewhere than sbx_term_check says");
}

static void fuzz_term(const unsigned char *d, size_t n) {
    size_t used = SIZE_MAX;
    if (sbx_term_check(d, n, &used) != 0) {
        if (used != SIZE_MAX)
            fail("sbx_term_check changed *used on failure");
        return;
    }
    if (used == 0 || used > n)
        fail("sbx_term_check: *used out of range");
    if (ignore_known && shows_known_bug(d, used))
        return;
    /* The term alone, in an exact-size buffer, is accepted with the same size; one byte
     * less is not. */
    unsigned char *c = dup_exact(d, used);
    size_t used2 = SIZE_MAX;
    if (sbx_term_check(c, used, &used2) != 0 || used2 != used)
        fail("sbx_term_check: the term alone is judged differently");
    used2 = SIZE_MAX;
    if (sbx_term_check(c, used - 1, &used2) != -1 || used2 != SIZE_MAX)
        fail("sbx_term_check accepts a strict prefix of a term");
    free(c);
    ei_agrees(d, used);
}

/* ---- mode 1: packet stream ----------------------------------------------------------------- */

/* Checks one versioned term (131 + term) of a split packet with term_check and ei. */
static void packet_term(const char *p, size_t len) {
    if (len < 2 || (unsigned char)p[0] != 131)
        fail("split: term does not start with the version byte");
    size_t used = SIZE_MAX;
    if (sbx_term_check((const unsigned char *)p + 1, len - 1, &used) != 0 || used != len - 1)
        fail("split: term length disagrees with sbx_term_check");
    /* As control.c reads it: ei_decode_version, then ei on the term. */
    const char *g = guarded(p, len);
    if (g == NULL)
        return;
    int idx = 0, version = 0;
    if (ei_decode_version(g, &idx, &version) != 0 || version != 131)
        fail("ei_decode_version");
    ei_agrees((const unsigned char *)p + 1, len - 1);
}

/* The expected outcome of sbx_frame_split, from sbx_term_check alone. */
static int expect_split(const unsigned char *b, size_t len) {
    size_t u1, u2;
    if (len < 3 || b[0] != 112 || b[1] != 131 || sbx_term_check(b + 2, len - 2, &u1) != 0)
        return -1;
    size_t pos = 2 + u1;
    if (pos == len)
        return 0;
    if (b[pos] != 131 || sbx_term_check(b + pos + 1, len - pos - 1, &u2) != 0)
        return -1;
    return pos + 1 + u2 == len ? 0 : -1;
}

static void split_one(const unsigned char *body, size_t len) {
    unsigned char *c = dup_exact(body, len);
    struct sbx_dist_packet pkt;
    memset(&pkt, 0, sizeof pkt);
    int rc = sbx_frame_split(c, len, &pkt);
    if (rc != expect_split(c, len))
        fail("sbx_frame_split disagrees with the framing rules");
    if (rc == 0) {
        if (pkt.ctl != (const char *)c + 1)
            fail("split: ctl does not follow the 112 byte");
        if (pkt.msg == NULL) {
            if (pkt.msg_len != 0 || 1 + pkt.ctl_len != len)
                fail("split: control-only packet sizes");
        } else if (pkt.msg != pkt.ctl + pkt.ctl_len || 1 + pkt.ctl_len + pkt.msg_len != len) {
            fail("split: message placement");
        }
        packet_term(pkt.ctl, pkt.ctl_len);
        if (pkt.msg != NULL)
            packet_term(pkt.msg, pkt.msg_len);
    }
    free(c);
}

static void fuzz_frames(const unsigned char *d, size_t n, unsigned sel) {
    int prefix = (sel & 4) ? 2 : 4;
    size_t max = (sel & 8) ? 64 : (size_t)64 << 20;
    size_t pos = 0;
    while (pos < n) {
        size_t avail = n - pos, body_len = SIZE_MAX;
        enum sbx_frame_status st = sbx_frame_peek(d + pos, avail, prefix, max, &body_len);
        size_t announced = 0;
        if (avail >= (size_t)prefix)
            announced = prefix == 2 ? be16(d + pos) : be32(d + pos);
        if (avail < (size_t)prefix) {
            if (st != SBX_FRAME_NEED_MORE)
                fail("peek: short prefix not NEED_MORE");
            break;
        }
        if (announced > max) {
            if (st != SBX_FRAME_TOO_BIG)
                fail("peek: oversized length not TOO_BIG");
            break;
        }
        if (announced > avail - (size_t)prefix) {
            if (st != SBX_FRAME_NEED_MORE)
                fail("peek: partial body not NEED_MORE");
            break;
        }
        if (st != SBX_FRAME_READY || body_len != announced)
            fail("peek: complete packet not READY with its length");
        if (body_len > 0) /* 0 is a tick */
            split_one(d + pos + prefix, body_len);
        pos += (size_t)prefix + body_len;
    }
}

/* ---- mode 2: handshake ----------------------------------------------------------------------- */

/* Independent reading of the node-name rule. */
static int name_ok(const unsigned char *s, size_t len) {
    size_t ats = 0, at = 0;
    if (len == 0 || len > SBX_NODE_NAME_MAX || memchr(s, 0, len) != NULL)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '@') {
            ats++;
            at = i;
        }
    return ats == 1 && at > 0 && at < len - 1;
}

static void fuzz_handshake(const unsigned char *d, size_t n, unsigned sel) {
    unsigned char *c = dup_exact(d, n);
    unsigned char out[2 + 19 + SBX_NODE_NAME_MAX + 8];

    if (sbx_node_name_valid((const char *)c, n) != name_ok(c, n))
        fail("sbx_node_name_valid disagrees with the rule");

    struct sbx_hs_name nm;
    memset(&nm, 0, sizeof nm);
    if (sbx_hs_parse_name(c, n, &nm) == 0) {
        size_t l = strnlen(nm.name, sizeof nm.name);
        if (l == sizeof nm.name || n < 15 || c[0] != 'N' || be16(c + 13) != l ||
            n < 15 + l || memcmp(c + 15, nm.name, l) != 0 || !name_ok(c + 15, l))
            fail("parse_name accepted a body that does not say so");
        if (nm.flags != be64(c + 1) || nm.creation != be32(c + 9))
            fail("parse_name fields");
        int k = sbx_hs_encode_name(out, sizeof out, nm.flags, nm.creation, nm.name);
        if (k != (int)(17 + l) || be16(out) != 15 + l || memcmp(out + 2, c, 15 + l) != 0)
            fail("name does not round-trip");
    }

    struct sbx_hs_challenge ch;
    memset(&ch, 0, sizeof ch);
    if (sbx_hs_parse_challenge(c, n, &ch) == 0) {
        size_t l = strnlen(ch.name, sizeof ch.name);
        if (l == sizeof ch.name || n < 19 + l || c[0] != 'N' || be16(c + 17) != l ||
            memcmp(c + 19, ch.name, l) != 0 || !name_ok(c + 19, l))
            fail("parse_challenge accepted a body that does not say so");
        if (ch.flags != be64(c + 1) || ch.challenge != be32(c + 9) || ch.creation != be32(c + 13))
            fail("parse_challenge fields");
        int k = sbx_hs_encode_challenge(out, sizeof out, ch.flags, ch.challenge, ch.creation,
                                        ch.name);
        if (k != (int)(21 + l) || memcmp(out + 2, c, 19 + l) != 0)
            fail("challenge does not round-trip");
    }

    size_t cap = (sel >> 2) & 63;
    if (sel & 0x80)
        cap = 300;
    char *st = malloc(cap > 0 ? cap : 1);
    if (st == NULL)
        fail("malloc");
    int rs = sbx_hs_parse_status(c, n, st, cap);
    int want_status = n >= 2 && c[0] == 's' && n - 1 < cap && memchr(c + 1, 0, n - 1) == NULL;
    if ((rs == 0) != want_status)
        fail("parse_status disagrees with the rule");
    if (rs == 0) {
        if (strlen(st) != n - 1 || memcmp(st, c + 1, n - 1) != 0)
            fail("parse_status text");
        unsigned char *enc = malloc(n + 2);
        if (enc == NULL)
            fail("malloc");
        if (sbx_hs_encode_status(enc, n + 2, st) != (int)(n + 2) || be16(enc) != n ||
            memcmp(enc + 2, c, n) != 0)
            fail("status does not round-trip");
        /* One byte less room: refused, and ASan checks nothing is written past it. */
        if (sbx_hs_encode_status(enc, n + 1, st) != -1)
            fail("encode_status ignores cap");
        free(enc);
    }
    free(st);

    uint32_t challenge = 0;
    unsigned char dg[16];
    if (sbx_hs_parse_reply(c, n, &challenge, dg) == 0) {
        if (n != 21 || c[0] != 'r' || challenge != be32(c + 1) || memcmp(dg, c + 5, 16) != 0)
            fail("parse_reply");
        if (sbx_hs_encode_reply(out, 23, challenge, dg) != 23 || memcmp(out + 2, c, 21) != 0)
            fail("reply does not round-trip");
    } else if (n == 21 && c[0] == 'r') {
        fail("parse_reply refused a reply");
    }
    if (sbx_hs_parse_ack(c, n, dg) == 0) {
        if (n != 17 || c[0] != 'a' || memcmp(dg, c + 1, 16) != 0)
            fail("parse_ack");
        if (sbx_hs_encode_ack(out, 19, dg) != 19 || memcmp(out + 2, c, 17) != 0)
            fail("ack does not round-trip");
    } else if (n == 17 && c[0] == 'a') {
        fail("parse_ack refused an ack");
    }

    /* The encoders with the input as a name/status and a small exact-size buffer. */
    char *text = malloc(n + 1);
    if (text == NULL)
        fail("malloc");
    if (n > 0)
        memcpy(text, c, n);
    text[n] = '\0';
    size_t tl = strlen(text);
    size_t ecap = (size_t)(sel >> 2);
    unsigned char *e = malloc(ecap > 0 ? ecap : 1);
    if (e == NULL)
        fail("malloc");
    int k = sbx_hs_encode_name(e, ecap, 1, 2, text);
    if (k != (ecap >= tl + 17 ? (int)(tl + 17) : -1))
        fail("encode_name size");
    k = sbx_hs_encode_challenge(e, ecap, 1, 2, 3, text);
    if (k != (ecap >= tl + 21 ? (int)(tl + 21) : -1))
        fail("encode_challenge size");
    k = sbx_hs_encode_status(e, ecap, text);
    if (k != (ecap >= tl + 3 ? (int)(tl + 3) : -1))
        fail("encode_status size");
    free(e);
    if ((sel & 0x40) && n >= 4) {
        unsigned char d1[16], d2[16];
        const char *cookie = tl >= 4 ? text + 4 : "";
        if (sbx_hs_digest(cookie, be32(c), d1) != 0 || sbx_hs_digest(cookie, be32(c), d2) != 0 ||
            !sbx_hs_digest_equal(d1, d2))
            fail("digest is not deterministic");
        d2[c[0] & 15] ^= (unsigned char)(1u << (c[1] & 7));
        if (sbx_hs_digest_equal(d1, d2))
            fail("digest_equal misses a flipped bit");
    }
    free(text);
    free(c);
}

/* ---- mode 3: epmd ---------------------------------------------------------------------------- */

static int expect_port(const unsigned char *b, size_t len, uint16_t *port) {
    if (len < 2)
        return 0;
    if (b[0] != 119 || b[1] != 0)
        return -1;
    if (len < 10)
        return 0;
    if (be16(b + 6) < 6 || be16(b + 8) > 6)
        return -1;
    *port = (uint16_t)be16(b + 2);
    return 1;
}

static int expect_alive(const unsigned char *b, size_t len, uint32_t *creation) {
    if (len < 2)
        return 0;
    if ((b[0] != 118 && b[0] != 121) || b[1] != 0)
        return -1;
    if (b[0] == 118) {
        if (len < 6)
            return 0;
        *creation = be32(b + 2);
    } else {
        if (len < 4)
            return 0;
        *creation = be16(b + 2);
    }
    return 1;
}

static void fuzz_epmd(const unsigned char *d, size_t n, unsigned sel) {
    /* Every prefix up to 16 bytes and the whole input, as replies arrive in pieces. */
    for (size_t len = 0; len <= n; len = len < 16 ? len + 1 : (len < n ? n : n + 1)) {
        unsigned char *c = dup_exact(d, len);
        uint16_t port = 0, wport = 0;
        const char *why = NULL;
        int r = sbx_epmd_parse_port_reply(c, len, &port, &why);
        if (r != expect_port(c, len, &wport) || (r == 1 && port != wport) ||
            (r == -1 && (why == NULL || why[0] == '\0')))
            fail("parse_port_reply");
        uint32_t cr = 0, wcr = 0;
        why = NULL;
        r = sbx_epmd_parse_alive_reply(c, len, &cr, &why);
        if (r != expect_alive(c, len, &wcr) || (r == 1 && cr != wcr) ||
            (r == -1 && (why == NULL || why[0] == '\0')))
            fail("parse_alive_reply");
        free(c);
    }

    char *name = malloc(n + 1);
    if (name == NULL)
        fail("malloc");
    if (n > 0)
        memcpy(name, d, n);
    name[n] = '\0';
    const char *at = strchr(name, '@');
    size_t alen = at != NULL ? (size_t)(at - name) : strlen(name);
    size_t cap = (size_t)(sel >> 2);
    unsigned char *out = malloc(cap > 0 ? cap : 1);
    if (out == NULL)
        fail("malloc");
    int k = sbx_epmd_encode_port_please(out, cap, name);
    int want = alen == 0 || alen + 3 > cap ? -1 : (int)(alen + 3);
    if (k != want)
        fail("encode_port_please size");
    if (k > 0 && (be16(out) != alen + 1 || out[2] != 122 || memcmp(out + 3, name, alen) != 0))
        fail("encode_port_please bytes");
    free(out);
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    const unsigned char *d = data + 1;
    size_t n = size - 1;
    switch (sel & 3) {
    case 0: fuzz_term(d, n); break;
    case 1: fuzz_frames(d, n, sel); break;
    case 2: fuzz_handshake(d, n, sel); break;
    default: fuzz_epmd(d, n, sel); break;
    }
    return 0;
}
