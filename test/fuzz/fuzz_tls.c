/* libFuzzer target for distribution over TLS: the accepting side's TLS handshake as
 * sandboxd sets it up (dist/tls.c contexts made from an optfile by dist/tls_opts.c, with
 * verify_peer and fail_if_no_peer_cert), and the optfile parser itself.
 *
 * The first input byte selects the mode (low 2 bits):
 *   0  the rest is what a hostile client sends: fed to the server SSL as its whole input.
 *   1  a real client (certificate of the trusted CA) talks to the server through memory
 *      BIOs; the rest of the input is a list of (offset:16, xor:8) edits applied to the
 *      client's bytes before the server reads them, so the server sees broken records deep
 *      inside a handshake that is otherwise valid.
 *   2  the rest is an optfile for sbx_tls_opts_parse; what parses is written out and must
 *      parse back to the same options.
 * Certificates are made in memory at start-up (one self-signed EC certificate, which is the
 * CA, the server's and the client's) and written to a temporary folder for the optfile. */
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dist/tls.h"
#include "dist/tls_opts.h"

static struct sbx_tls *tls;
static SSL_CTX *client_ctx;

/* A self-signed EC certificate and its key into dir/cert.pem and dir/key.pem; aborts on
 * failure (the target cannot run without it). */
static void make_cert(const char *dir, EVP_PKEY **key_out, X509 **cert_out) {
    char path[512];
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (key == NULL || x == NULL)
        abort();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -3600);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
    X509_set_pubkey(x, key);
    X509_NAME *n = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz", -1, -1, 0);
    X509_set_issuer_name(x, n);
    if (X509_sign(x, key, EVP_sha256()) == 0)
        abort();
    snprintf(path, sizeof path, "%s/cert.pem", dir);
    FILE *f = fopen(path, "w");
    if (f == NULL || PEM_write_X509(f, x) != 1)
        abort();
    fclose(f);
    snprintf(path, sizeof path, "%s/key.pem", dir);
    f = fopen(path, "w");
    if (f == NULL || PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) != 1)
        abort();
    fclose(f);
    *key_out = key;
    *cert_out = x;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/sbx-fuzz-tls-XXXXXX", text[2048], why[300];
    struct sbx_tls_opts o;
    EVP_PKEY *key;
    X509 *cert;
    if (mkdtemp(dir) == NULL)
        abort();
    make_cert(dir, &key, &cert);
    snprintf(text, sizeof text,
             "[{server, [{certfile, \"%s/cert.pem\"}, {keyfile, \"%s/key.pem\"},"
             " {cacertfile, \"%s/cert.pem\"}, {verify, verify_peer},"
             " {fail_if_no_peer_cert, true}, {versions, ['tlsv1.2', 'tlsv1.3']}]}].",
             dir, dir, dir);
    if (sbx_tls_opts_parse(text, strlen(text), &o, why, sizeof why) != 0 ||
        (tls = sbx_tls_new(&o, why, sizeof why)) == NULL) {
        fprintf(stderr, "fuzz_tls: %s\n", why);
        abort();
    }
    /* The contexts hold everything now: the files go. */
    snprintf(text, sizeof text, "%s/cert.pem", dir);
    unlink(text);
    snprintf(text, sizeof text, "%s/key.pem", dir);
    unlink(text);
    rmdir(dir);
    client_ctx = SSL_CTX_new(TLS_client_method());
    if (client_ctx == NULL || SSL_CTX_use_certificate(client_ctx, cert) != 1 ||
        SSL_CTX_use_PrivateKey(client_ctx, key) != 1)
        abort();
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    EVP_PKEY_free(key);
    X509_free(cert);
    return 0;
}

/* A server SSL with memory BIOs: bytes written to *in reach it, it writes to *out. */
static SSL *server_with_bios(BIO **in, BIO **out) {
    SSL *s = sbx_tls_server_ssl(tls);
    if (s == NULL)
        abort();
    *in = BIO_new(BIO_s_mem());
    *out = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(*in, -1);
    SSL_set_bio(s, *in, *out);
    SSL_set_accept_state(s);
    return s;
}

/* Moves what `from` wrote into `to`, applying the edits in ed[0..edlen) whose offsets (over
 * the whole client stream, *pos so far) fall in this chunk. */
static void pump(BIO *from, BIO *to, const uint8_t *ed, size_t edlen, size_t *pos) {
    char buf[16384];
    int n;
    while ((n = BIO_read(from, buf, sizeof buf)) > 0) {
        for (size_t i = 0; ed != NULL && i + 3 <= edlen; i += 3) {
            size_t off = (size_t)ed[i] << 8 | ed[i + 1];
            if (off >= *pos && off < *pos + (size_t)n)
                buf[off - *pos] ^= (char)(ed[i + 2] ? ed[i + 2] : 1);
        }
        *pos += (size_t)n;
        BIO_write(to, buf, n);
    }
}

/* Mode 0: the input is the client's whole byte stream. */
static void raw_client(const uint8_t *d, size_t n) {
    BIO *in, *out;
    SSL *s = server_with_bios(&in, &out);
    if (n > 0)
        BIO_write(in, d, (int)n);
    (void)SSL_do_handshake(s);
    char buf[256];
    (void)SSL_read(s, buf, sizeof buf); /* past the handshake, if it got there */
    SSL_free(s);
}

/* Mode 1: a real client, its bytes edited on the way. */
static void edited_client(const uint8_t *ed, size_t edlen) {
    BIO *sin, *sout, *cin, *cout;
    SSL *s = server_with_bios(&sin, &sout);
    SSL *c = SSL_new(client_ctx);
    size_t pos = 0, spos = 0;
    if (c == NULL)
        abort();
    cin = BIO_new(BIO_s_mem());
    cout = BIO_new(BIO_s_mem());
    BIO_set_mem_eof_return(cin, -1);
    SSL_set_bio(c, cin, cout);
    SSL_set_connect_state(c);
    for (int round = 0; round < 12; round++) {
        int rc_c = SSL_do_handshake(c);
        pump(cout, sin, ed, edlen, &pos);
        int rc_s = SSL_do_handshake(s);
        pump(sout, cin, NULL, 0, &spos);
        if (rc_c == 1 && rc_s == 1)
            break;
        if ((rc_s <= 0 && SSL_get_error(s, rc_s) == SSL_ERROR_SSL) ||
            (rc_c <= 0 && SSL_get_error(c, rc_c) == SSL_ERROR_SSL))
            break;
    }
    /* A packet inside TLS, as the distribution handshake's first message would be. */
    static const char name_msg[] = {0, 0, 0, 3, 'N', 0, 0};
    if (SSL_is_init_finished(c) && SSL_write(c, name_msg, sizeof name_msg) > 0) {
        char buf[64];
        pump(cout, sin, ed, edlen, &pos);
        (void)SSL_read(s, buf, sizeof buf);
    }
    ERR_clear_error();
    SSL_free(c);
    SSL_free(s);
}

/* Mode 2: the optfile parser, and its writer read back. */
static void optfile(const uint8_t *d, size_t n) {
    struct sbx_tls_opts a, b;
    char why[128], *text = NULL;
    size_t len = 0;
    if (sbx_tls_opts_parse((const char *)d, n, &a, why, sizeof why) != 0)
        return;
    FILE *f = open_memstream(&text, &len);
    if (f == NULL)
        return;
    int w = sbx_tls_opts_write(f, &a);
    fclose(f);
    if (w != 0 || sbx_tls_opts_parse(text, len, &b, why, sizeof why) != 0 ||
        memcmp(&a, &b, sizeof a) != 0) {
        fprintf(stderr, "INVARIANT: optfile written does not read back the same: %s\n", text);
        abort();
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1)
        return 0;
    switch (data[0] & 3) {
    case 0: raw_client(data + 1, size - 1); break;
    case 1: edited_client(data + 1, size - 1); break;
    default: optfile(data + 1, size - 1); break;
    }
    ERR_clear_error();
    return 0;
}
