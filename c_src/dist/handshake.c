/* Handshake message codecs and the MD5 challenge digest. */
#include "dist/handshake.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/* Writes the low 16 bits of v big-endian at p; the caller has checked the room. */
static void put16(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

/* Writes v big-endian at p[0..4); the caller has checked the room. */
static void put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Writes v big-endian at p[0..8); the caller has checked the room. */
static void put64(unsigned char *p, uint64_t v) {
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

/* Reads a big-endian 16-bit value; the caller has checked that 2 bytes are there. */
static uint32_t get16(const unsigned char *p) { return (uint32_t)p[0] << 8 | p[1]; }

/* Reads a big-endian 32-bit value; the caller has checked that 4 bytes are there. */
static uint32_t get32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads a big-endian 64-bit value; the caller has checked that 8 bytes are there. */
static uint64_t get64(const unsigned char *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

/* See handshake.h. Reads exactly len bytes; name need not be NUL-terminated. */
int sbx_node_name_valid(const char *name, size_t len) {
    const char *at = NULL;
    if (len == 0 || len > SBX_NODE_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (name[i] == '\0')
            return 0;
        if (name[i] == '@') {
            if (at != NULL)
                return 0;
            at = name + i;
        }
    }
    return at != NULL && at != name && at != name + len - 1;
}

/* Copies a name of len bytes from a body, validating it. */
static int take_name(const unsigned char *src, size_t len, char *out) {
    if (!sbx_node_name_valid((const char *)src, len))
        return -1;
    memcpy(out, src, len);
    out[len] = '\0';
    return 0;
}

/* See handshake.h. Bytes after the name are ignored; out may be partly written on -1. */
int sbx_hs_parse_name(const unsigned char *body, size_t len, struct sbx_hs_name *out) {
    if (len < 15 || body[0] != 'N')
        return -1;
    out->flags = get64(body + 1);
    out->creation = get32(body + 9);
    size_t nlen = get16(body + 13);
    if (nlen > len - 15) /* trailing bytes after the name are ignored */
        return -1;
    return take_name(body + 15, nlen, out->name);
}

/* See handshake.h. Bytes after the name are ignored; out may be partly written on -1. */
int sbx_hs_parse_challenge(const unsigned char *body, size_t len, struct sbx_hs_challenge *out) {
    if (len < 19 || body[0] != 'N')
        return -1;
    out->flags = get64(body + 1);
    out->challenge = get32(body + 9);
    out->creation = get32(body + 13);
    size_t nlen = get16(body + 17);
    if (nlen > len - 19)
        return -1;
    return take_name(body + 19, nlen, out->name);
}

/* See handshake.h. Fails on an embedded NUL; out may have been written on -1. */
int sbx_hs_parse_status(const unsigned char *body, size_t len, char *out, size_t cap) {
    if (len < 2 || body[0] != 's' || len - 1 >= cap)
        return -1;
    memcpy(out, body + 1, len - 1);
    out[len - 1] = '\0';
    return strlen(out) == len - 1 ? 0 : -1;
}

/* See handshake.h. The body must be exactly 21 bytes; outputs untouched on -1. */
int sbx_hs_parse_reply(const unsigned char *body, size_t len, uint32_t *challenge,
                       unsigned char digest[16]) {
    if (len != 21 || body[0] != 'r')
        return -1;
    *challenge = get32(body + 1);
    memcpy(digest, body + 5, 16);
    return 0;
}

/* See handshake.h. The body must be exactly 17 bytes; digest untouched on -1. */
int sbx_hs_parse_ack(const unsigned char *body, size_t len, unsigned char digest[16]) {
    if (len != 17 || body[0] != 'a')
        return -1;
    memcpy(digest, body + 1, 16);
    return 0;
}

/* See handshake.h. name is not validated here; out untouched on -1. */
int sbx_hs_encode_name(unsigned char *out, size_t cap, uint64_t flags, uint32_t creation,
                       const char *name) {
    size_t nlen = strlen(name);
    size_t body = 15 + nlen;
    if (body > 0xffff || cap < body + 2)
        return -1;
    put16(out, (uint32_t)body);
    out[2] = 'N';
    put64(out + 3, flags);
    put32(out + 11, creation);
    put16(out + 15, (uint32_t)nlen);
    memcpy(out + 17, name, nlen);
    return (int)(body + 2);
}

/* See handshake.h. name is not validated here; out untouched on -1. */
int sbx_hs_encode_challenge(unsigned char *out, size_t cap, uint64_t flags,
                            uint32_t challenge, uint32_t creation, const char *name) {
    size_t nlen = strlen(name);
    size_t body = 19 + nlen;
    if (body > 0xffff || cap < body + 2)
        return -1;
    put16(out, (uint32_t)body);
    out[2] = 'N';
    put64(out + 3, flags);
    put32(out + 11, challenge);
    put32(out + 15, creation);
    put16(out + 19, (uint32_t)nlen);
    memcpy(out + 21, name, nlen);
    return (int)(body + 2);
}

/* See handshake.h. out untouched on -1. */
int sbx_hs_encode_status(unsigned char *out, size_t cap, const char *status) {
    size_t slen = strlen(status);
    if (slen + 1 > 0xffff || cap < slen + 3)
        return -1;
    put16(out, (uint32_t)(slen + 1));
    out[2] = 's';
    memcpy(out + 3, status, slen);
    return (int)(slen + 3);
}

/* See handshake.h. out untouched on -1. */
int sbx_hs_encode_reply(unsigned char *out, size_t cap, uint32_t challenge,
                        const unsigned char digest[16]) {
    if (cap < 23)
        return -1;
    put16(out, 21);
    out[2] = 'r';
    put32(out + 3, challenge);
    memcpy(out + 7, digest, 16);
    return 23;
}

/* See handshake.h. out untouched on -1. */
int sbx_hs_encode_ack(unsigned char *out, size_t cap, const unsigned char digest[16]) {
    if (cap < 19)
        return -1;
    put16(out, 17);
    out[2] = 'a';
    memcpy(out + 3, digest, 16);
    return 19;
}

/* See handshake.h. Allocates and frees its own MD5 context; never logs the cookie. */
int sbx_hs_digest(const char *cookie, uint32_t challenge, unsigned char digest[16]) {
    char num[16];
    unsigned int dlen = 16;
    int rc = -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int n = snprintf(num, sizeof num, "%u", challenge);

    if (ctx == NULL)
        goto done;
    if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, cookie, strlen(cookie)) == 1 &&
        EVP_DigestUpdate(ctx, num, (size_t)n) == 1 &&
        EVP_DigestFinal_ex(ctx, digest, &dlen) == 1 && dlen == 16)
        rc = 0;
done:
    EVP_MD_CTX_free(ctx);
    return rc;
}

/* See handshake.h. Time does not depend on where the digests differ. */
int sbx_hs_digest_equal(const unsigned char a[16], const unsigned char b[16]) {
    unsigned char diff = 0;
    for (int i = 0; i < 16; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}
