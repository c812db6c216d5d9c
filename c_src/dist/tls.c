/* OpenSSL contexts for distribution over TLS, and the bufferevents that use them. */
#include "dist/tls.h"

#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sbx_tls {
    SSL_CTX *server;
    SSL_CTX *client;
    struct sbx_tls_opts opts;
};

/* The last OpenSSL error in words into why (after a prefix). */
static void ssl_why(char *why, size_t cap, const char *what, const char *path) {
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    snprintf(why, cap, "%s %s: %s", what, path, r != NULL ? r : "failed");
    ERR_clear_error();
}

/* Applies one side's options to ctx. is_server: the accepting side's defaults (verify_none)
 * and its duty to have a certificate. 0, or -1 with why set. */
static int configure(SSL_CTX *ctx, const struct sbx_tls_side *sd, int is_server, char *why,
                     size_t cap) {
    int mode = SSL_VERIFY_NONE;
    if (is_server && sd->certfile[0] == '\0') {
        snprintf(why, cap, "the optfile's {server, [...]} has no certfile");
        return -1;
    }
    if (sd->certfile[0] != '\0') {
        const char *key = sd->keyfile[0] != '\0' ? sd->keyfile : sd->certfile;
        if (SSL_CTX_use_certificate_chain_file(ctx, sd->certfile) != 1) {
            ssl_why(why, cap, "cannot load certfile", sd->certfile);
            return -1;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ctx) != 1) {
            ssl_why(why, cap, "cannot load the key of", key);
            return -1;
        }
    }
    if (sd->cacertfile[0] != '\0') {
        if (SSL_CTX_load_verify_locations(ctx, sd->cacertfile, NULL) != 1) {
            ssl_why(why, cap, "cannot load cacertfile", sd->cacertfile);
            return -1;
        }
        if (is_server) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(sd->cacertfile);
            if (names != NULL)
                SSL_CTX_set_client_CA_list(ctx, names);
        }
    }
    if (sd->verify == SBX_TLS_VERIFY_PEER) {
        if (sd->cacertfile[0] == '\0') {
            snprintf(why, cap, "verify_peer needs a cacertfile (%s side)",
                     is_server ? "server" : "client");
            return -1;
        }
        mode = SSL_VERIFY_PEER;
        if (is_server && sd->fail_if_no_peer_cert == 1)
            mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    }
    SSL_CTX_set_verify(ctx, mode, NULL);
    if (sd->depth >= 0)
        SSL_CTX_set_verify_depth(ctx, sd->depth);
    /* OpenSSL 3 always renegotiates securely; secure_renegotiate false is not honoured
     * beyond refusing renegotiation altogether. */
    if (sd->secure_renegotiate == 0)
        SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    int lo = TLS1_2_VERSION, hi = TLS1_3_VERSION;
    if (sd->versions != 0) {
        lo = sd->versions & SBX_TLS_V12 ? TLS1_2_VERSION : TLS1_3_VERSION;
        hi = sd->versions & SBX_TLS_V13 ? TLS1_3_VERSION : TLS1_2_VERSION;
    }
    SSL_CTX_set_min_proto_version(ctx, lo);
    SSL_CTX_set_max_proto_version(ctx, hi);
    return 0;
}

/* See tls.h. Loads every file now. */
struct sbx_tls *sbx_tls_new(const struct sbx_tls_opts *opts, char *why, size_t cap) {
    struct sbx_tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        snprintf(why, cap, "out of memory");
        goto fail;
    }
    t->opts = *opts;
    if (!opts->server.present) {
        snprintf(why, cap, "the optfile has no {server, [...]}");
        goto fail;
    }
    t->server = SSL_CTX_new(TLS_server_method());
    t->client = SSL_CTX_new(TLS_client_method());
    if (t->server == NULL || t->client == NULL) {
        snprintf(why, cap, "cannot make an OpenSSL context");
        goto fail;
    }
    if (configure(t->server, &opts->server, 1, why, cap) != 0 ||
        configure(t->client, &opts->client, 0, why, cap) != 0)
        goto fail;
    return t;
fail:
    sbx_tls_free(t);
    return NULL;
}

/* See tls.h. NULL is a no-op. */
void sbx_tls_free(struct sbx_tls *t) {
    if (t == NULL)
        return;
    SSL_CTX_free(t->server);
    SSL_CTX_free(t->client);
    free(t);
}

/* See tls.h. */
const struct sbx_tls_opts *sbx_tls_options(const struct sbx_tls *t) { return &t->opts; }

/* Wraps fd and ssl in an openssl bufferevent in the given state; a peer that closes without
 * close_notify (as a BEAM often does) is an EOF, not an error. Frees ssl and closes fd on
 * failure. */
static struct bufferevent *wrap(struct event_base *base, evutil_socket_t fd, SSL *ssl,
                                enum bufferevent_ssl_state state) {
    struct bufferevent *bev =
        bufferevent_openssl_socket_new(base, fd, ssl, state, BEV_OPT_CLOSE_ON_FREE);
    if (bev == NULL) {
        SSL_free(ssl);
        evutil_closesocket(fd);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

/* See tls.h. */
SSL *sbx_tls_server_ssl(struct sbx_tls *t) { return SSL_new(t->server); }

/* See tls.h. */
struct bufferevent *sbx_tls_accept_bev(struct sbx_tls *t, struct event_base *base,
                                       evutil_socket_t fd) {
    SSL *ssl = sbx_tls_server_ssl(t);
    if (ssl == NULL) {
        evutil_closesocket(fd);
        return NULL;
    }
    return wrap(base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING);
}

/* See tls.h. SNI: server_name_indication's string, else host, unless disabled. With
 * verify_peer the server's certificate must name host (or the SNI string), as OTP's ssl
 * client checks it; an address is checked as an IP SAN. */
struct bufferevent *sbx_tls_connect_bev(struct sbx_tls *t, struct event_base *base,
                                        evutil_socket_t fd, const char *host) {
    const struct sbx_tls_side *sd = &t->opts.client;
    const char *name = sd->sni[0] != '\0' ? sd->sni : host;
    unsigned char addr[16];
    int is_ip = inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
    SSL *ssl = SSL_new(t->client);
    if (ssl == NULL) {
        evutil_closesocket(fd);
        return NULL;
    }
    if (!sd->sni_disable && !is_ip && SSL_set_tlsext_host_name(ssl, name) != 1)
        goto fail;
    if (sd->verify == SBX_TLS_VERIFY_PEER && !sd->sni_disable) {
        X509_VERIFY_PARAM *p = SSL_get0_param(ssl);
        if (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(p, name) != 1 : SSL_set1_host(ssl, name) != 1)
            goto fail;
    }
    return wrap(base, fd, ssl, BUFFEREVENT_SSL_CONNECTING);
fail:
    SSL_free(ssl);
    evutil_closesocket(fd);
    return NULL;
}

/* See tls.h. The certificate check's own result first (it says why a chain was refused),
 * then OpenSSL's queued errors for this bufferevent. */
void sbx_tls_error(struct bufferevent *bev, char *out, size_t cap) {
    SSL *ssl = bufferevent_openssl_get_ssl(bev);
    unsigned long e, last = 0;
    out[0] = '\0';
    /* libevent hands them back last first; the one it queued first is SSL_get_error's code
     * (library 0), the others are OpenSSL's: keep the earliest of those. */
    while ((e = bufferevent_get_openssl_error(bev)) != 0)
        if (ERR_GET_LIB(e) != 0)
            last = e;
    if (ssl != NULL && SSL_get_verify_result(ssl) != X509_V_OK) {
        snprintf(out, cap, "TLS: certificate verify failed: %s",
                 X509_verify_cert_error_string(SSL_get_verify_result(ssl)));
        return;
    }
    if (last != 0 && ERR_GET_REASON(last) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        /* A BEAM closes without close_notify: an end, not a TLS failure. */
        snprintf(out, cap, "peer closed the connection");
    } else if (last != 0) {
        char text[120];
        const char *r = ERR_reason_error_string(last);
        if (r == NULL) {
            ERR_error_string_n(last, text, sizeof text);
            r = text;
        }
        snprintf(out, cap, "TLS: %s", r);
    }
}
