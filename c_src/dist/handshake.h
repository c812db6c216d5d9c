/* Distribution handshake (version 6) messages: pure encoders and parsers.
 *
 * A message travels as a 2-byte big-endian length and a body. The parsers take one body
 * (without the length) and never read outside it. The encoders write a body with its
 * length prefix into a caller's buffer. */
#ifndef SBX_DIST_HANDSHAKE_H
#define SBX_DIST_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#define SBX_NODE_NAME_MAX 255

/* 'N' Flags:64 Creation:32 NameLen:16 Name (send_name) */
struct sbx_hs_name {
    uint64_t flags;
    uint32_t creation;
    char name[SBX_NODE_NAME_MAX + 1];
};

/* 'N' Flags:64 Challenge:32 Creation:32 NameLen:16 Name (send_challenge) */
struct sbx_hs_challenge {
    uint64_t flags;
    uint32_t challenge;
    uint32_t creation;
    char name[SBX_NODE_NAME_MAX + 1];
};

/* Parsers: 0 on success with *out filled, -1 on a malformed body (out unspecified). */
int sbx_hs_parse_name(const unsigned char *body, size_t len, struct sbx_hs_name *out);
int sbx_hs_parse_challenge(const unsigned char *body, size_t len, struct sbx_hs_challenge *out);
/* 's' Status: copies the status text (NUL-terminated, at most cap-1 bytes). */
int sbx_hs_parse_status(const unsigned char *body, size_t len, char *out, size_t cap);
/* 'r' Challenge:32 Digest[16] */
int sbx_hs_parse_reply(const unsigned char *body, size_t len, uint32_t *challenge,
                       unsigned char digest[16]);
/* 'a' Digest[16] */
int sbx_hs_parse_ack(const unsigned char *body, size_t len, unsigned char digest[16]);

/* Encoders: return the number of bytes written (length prefix included), or -1 if cap is
 * too small. Nothing is written past cap. */
int sbx_hs_encode_name(unsigned char *out, size_t cap, uint64_t flags, uint32_t creation,
                       const char *name);
int sbx_hs_encode_challenge(unsigned char *out, size_t cap, uint64_t flags,
                            uint32_t challenge, uint32_t creation, const char *name);
int sbx_hs_encode_status(unsigned char *out, size_t cap, const char *status);
int sbx_hs_encode_reply(unsigned char *out, size_t cap, uint32_t challenge,
                        const unsigned char digest[16]);
int sbx_hs_encode_ack(unsigned char *out, size_t cap, const unsigned char digest[16]);

/* digest = md5(cookie ++ decimal(challenge)). Returns 0, or -1 if MD5 is unavailable
 * (digest then unspecified: the handshake must fail). */
int sbx_hs_digest(const char *cookie, uint32_t challenge, unsigned char digest[16]);

/* Constant-time comparison of two digests: 1 if equal. */
int sbx_hs_digest_equal(const unsigned char a[16], const unsigned char b[16]);

/* A node name is alive@host with 1..255 bytes, no NUL, exactly one '@' with text on both
 * sides. Returns 1 if valid. */
int sbx_node_name_valid(const char *name, size_t len);

#endif
