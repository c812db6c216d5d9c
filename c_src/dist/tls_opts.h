/* The -ssl_dist_optfile of an Erlang cluster, read by sandboxd for --proto-dist inet_tls:
 * Erlang terms `[{server, [Opt...]}, {client, [Opt...]}].` The keys sandboxd understands are
 * certfile, keyfile, cacertfile, verify, fail_if_no_peer_cert, secure_renegotiate, depth,
 * versions and server_name_indication; any other key is refused, by name. Pure parsing: no
 * file is opened but the optfile itself. */
#ifndef SBX_DIST_TLS_OPTS_H
#define SBX_DIST_TLS_OPTS_H

#include <stddef.h>
#include <stdio.h>

#define SBX_TLS_PATH_MAX 1024

enum sbx_tls_verify { SBX_TLS_VERIFY_DEFAULT = 0, SBX_TLS_VERIFY_NONE, SBX_TLS_VERIFY_PEER };

/* versions: bits of the accepted protocol versions (none set: OpenSSL's defaults). */
#define SBX_TLS_V12 0x1u
#define SBX_TLS_V13 0x2u

/* One side's options ({server, ...} or {client, ...}). Empty strings are "not given". */
struct sbx_tls_side {
    int present;                       /* the side appeared in the file */
    char certfile[SBX_TLS_PATH_MAX];
    char keyfile[SBX_TLS_PATH_MAX];    /* empty: the key is in certfile */
    char cacertfile[SBX_TLS_PATH_MAX];
    enum sbx_tls_verify verify;
    int fail_if_no_peer_cert;          /* -1 not given, else 0/1 */
    int secure_renegotiate;            /* -1 not given, else 0/1 */
    int depth;                         /* -1 not given */
    unsigned versions;                 /* SBX_TLS_V12 | SBX_TLS_V13; 0 not given */
    int sni_disable;                   /* {server_name_indication, disable} */
    char sni[256];                     /* {server_name_indication, "host"} */
};

struct sbx_tls_opts {
    struct sbx_tls_side server, client;
};

/* Parses text[0..len) (the optfile's content). Returns 0, or -1 with a message naming the
 * problem (an unknown key by name, the line of a syntax error) in why[0..cap). */
int sbx_tls_opts_parse(const char *text, size_t len, struct sbx_tls_opts *out, char *why,
                       size_t cap);

/* Reads and parses the file at path (at most 64 KiB). 0, or -1 with why set. */
int sbx_tls_opts_load(const char *path, struct sbx_tls_opts *out, char *why, size_t cap);

/* Writes opts to f as an optfile that erl accepts (-ssl_dist_optfile); 0, or -1 on a write
 * error. Paths and strings are written as Erlang strings, escaped. */
int sbx_tls_opts_write(FILE *f, const struct sbx_tls_opts *opts);

#endif
