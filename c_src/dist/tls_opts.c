/* The ssl_dist optfile parser: a small tokenizer for the Erlang terms such a file holds
 * (atoms, strings, integers, lists, tuples, comments) and a reader of the known keys. */
#include "dist/tls_opts.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum tok_kind { T_EOF, T_PUNCT, T_ATOM, T_STRING, T_INT, T_BAD };

struct lexer {
    const char *s;
    size_t len, pos;
    int line;
    enum tok_kind kind;
    char punct;
    char text[SBX_TLS_PATH_MAX]; /* atom or string value */
    long num;
    char *why;
    size_t cap;
};

/* Formats a message into lx->why, prefixed with the current line; always returns -1. */
static int fail(struct lexer *lx, const char *fmt, ...) {
    va_list ap;
    int n = snprintf(lx->why, lx->cap, "optfile line %d: ", lx->line);
    if (n < 0 || (size_t)n >= lx->cap)
        return -1;
    va_start(ap, fmt);
    vsnprintf(lx->why + n, lx->cap - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

/* Reads a quoted atom or string body after the opening quote q into lx->text, handling the
 * escapes \\, \q, \n, \t. 0, or -1 (unterminated or too long). */
static int quoted(struct lexer *lx, char q) {
    size_t n = 0;
    while (lx->pos < lx->len) {
        char ch = lx->s[lx->pos++];
        if (ch == q) {
            lx->text[n] = '\0';
            return 0;
        }
        if (ch == '\n')
            lx->line++;
        if (ch == '\\') {
            if (lx->pos >= lx->len)
                break;
            ch = lx->s[lx->pos++];
            ch = ch == 'n' ? '\n' : ch == 't' ? '\t' : ch;
        }
        if (ch == '\0' || n + 1 >= sizeof lx->text)
            return fail(lx, "string too long or holds a NUL");
        lx->text[n++] = ch;
    }
    return fail(lx, "unterminated %s", q == '"' ? "string" : "quoted atom");
}

/* Advances to the next token (lx->kind and its value). 0, or -1 with why set. */
static int next(struct lexer *lx) {
    for (;;) {
        while (lx->pos < lx->len && isspace((unsigned char)lx->s[lx->pos])) {
            if (lx->s[lx->pos] == '\n')
                lx->line++;
            lx->pos++;
        }
        if (lx->pos < lx->len && lx->s[lx->pos] == '%') {
            while (lx->pos < lx->len && lx->s[lx->pos] != '\n')
                lx->pos++;
            continue;
        }
        break;
    }
    if (lx->pos >= lx->len) {
        lx->kind = T_EOF;
        return 0;
    }
    char ch = lx->s[lx->pos];
    if (strchr("[]{},.", ch) != NULL) {
        lx->pos++;
        lx->kind = T_PUNCT;
        lx->punct = ch;
        return 0;
    }
    if (ch == '"' || ch == '\'') {
        lx->pos++;
        lx->kind = ch == '"' ? T_STRING : T_ATOM;
        return quoted(lx, ch);
    }
    if (islower((unsigned char)ch)) {
        size_t n = 0;
        while (lx->pos < lx->len && (isalnum((unsigned char)lx->s[lx->pos]) ||
                                     lx->s[lx->pos] == '_' || lx->s[lx->pos] == '@')) {
            if (n + 1 >= sizeof lx->text)
                return fail(lx, "atom too long");
            lx->text[n++] = lx->s[lx->pos++];
        }
        lx->text[n] = '\0';
        lx->kind = T_ATOM;
        return 0;
    }
    if (isdigit((unsigned char)ch)) {
        long v = 0;
        while (lx->pos < lx->len && isdigit((unsigned char)lx->s[lx->pos])) {
            v = v * 10 + (lx->s[lx->pos++] - '0');
            if (v > 1000000)
                return fail(lx, "integer too large");
        }
        lx->kind = T_INT;
        lx->num = v;
        return 0;
    }
    return fail(lx, "unexpected character '%c'", ch);
}

/* Expects punctuation p as the current token and moves past it. 0 or -1. */
static int expect(struct lexer *lx, char p) {
    if (lx->kind != T_PUNCT || lx->punct != p)
        return fail(lx, "expected '%c'", p);
    return next(lx);
}

static int is_punct(const struct lexer *lx, char p) {
    return lx->kind == T_PUNCT && lx->punct == p;
}

/* A boolean atom into *out. 0 or -1. */
static int boolean(struct lexer *lx, const char *key, int *out) {
    if (lx->kind == T_ATOM && strcmp(lx->text, "true") == 0)
        *out = 1;
    else if (lx->kind == T_ATOM && strcmp(lx->text, "false") == 0)
        *out = 0;
    else
        return fail(lx, "%s must be true or false", key);
    return next(lx);
}

/* A string value (a path) into out. 0 or -1. */
static int string_val(struct lexer *lx, const char *key, char *out, size_t cap) {
    if (lx->kind != T_STRING || lx->text[0] == '\0' || strlen(lx->text) >= cap)
        return fail(lx, "%s must be a non-empty string", key);
    snprintf(out, cap, "%s", lx->text);
    return next(lx);
}

/* versions: a list of 'tlsv1.2' / 'tlsv1.3'. 0 or -1. */
static int versions_val(struct lexer *lx, unsigned *out) {
    if (expect(lx, '[') != 0)
        return -1;
    while (!is_punct(lx, ']')) {
        if (lx->kind == T_ATOM && strcmp(lx->text, "tlsv1.2") == 0)
            *out |= SBX_TLS_V12;
        else if (lx->kind == T_ATOM && strcmp(lx->text, "tlsv1.3") == 0)
            *out |= SBX_TLS_V13;
        else
            return fail(lx, "versions: only 'tlsv1.2' and 'tlsv1.3' are supported");
        if (next(lx) != 0)
            return -1;
        if (is_punct(lx, ','))
            if (next(lx) != 0)
                return -1;
    }
    if (*out == 0)
        return fail(lx, "versions is empty");
    return next(lx);
}

/* One {Key, Value} of a side; the current token is the key atom. 0 or -1. */
static int option(struct lexer *lx, struct sbx_tls_side *sd) {
    char key[64];
    if (lx->kind != T_ATOM || strlen(lx->text) >= sizeof key)
        return fail(lx, "expected an option name");
    memcpy(key, lx->text, strlen(lx->text) + 1);
    if (next(lx) != 0 || expect(lx, ',') != 0)
        return -1;
    if (strcmp(key, "certfile") == 0)
        return string_val(lx, key, sd->certfile, sizeof sd->certfile);
    if (strcmp(key, "keyfile") == 0)
        return string_val(lx, key, sd->keyfile, sizeof sd->keyfile);
    if (strcmp(key, "cacertfile") == 0)
        return string_val(lx, key, sd->cacertfile, sizeof sd->cacertfile);
    if (strcmp(key, "fail_if_no_peer_cert") == 0)
        return boolean(lx, key, &sd->fail_if_no_peer_cert);
    if (strcmp(key, "secure_renegotiate") == 0)
        return boolean(lx, key, &sd->secure_renegotiate);
    if (strcmp(key, "versions") == 0)
        return versions_val(lx, &sd->versions);
    if (strcmp(key, "verify") == 0) {
        if (lx->kind == T_ATOM && strcmp(lx->text, "verify_peer") == 0)
            sd->verify = SBX_TLS_VERIFY_PEER;
        else if (lx->kind == T_ATOM && strcmp(lx->text, "verify_none") == 0)
            sd->verify = SBX_TLS_VERIFY_NONE;
        else
            return fail(lx, "verify must be verify_peer or verify_none");
        return next(lx);
    }
    if (strcmp(key, "depth") == 0) {
        if (lx->kind != T_INT || lx->num > 100)
            return fail(lx, "depth must be an integer from 0 to 100");
        sd->depth = (int)lx->num;
        return next(lx);
    }
    if (strcmp(key, "server_name_indication") == 0) {
        if (lx->kind == T_ATOM && strcmp(lx->text, "disable") == 0) {
            sd->sni_disable = 1;
            return next(lx);
        }
        return string_val(lx, key, sd->sni, sizeof sd->sni);
    }
    return fail(lx, "option %s is not supported by sandboxd", key);
}

/* {server | client, [Option...]}; the current token is '{'. 0 or -1. */
static int side(struct lexer *lx, struct sbx_tls_opts *out) {
    struct sbx_tls_side *sd;
    if (expect(lx, '{') != 0)
        return -1;
    if (lx->kind == T_ATOM && strcmp(lx->text, "server") == 0)
        sd = &out->server;
    else if (lx->kind == T_ATOM && strcmp(lx->text, "client") == 0)
        sd = &out->client;
    else
        return fail(lx, "expected {server, [...]} or {client, [...]}");
    if (sd->present)
        return fail(lx, "%s given twice", sd == &out->server ? "server" : "client");
    sd->present = 1;
    if (next(lx) != 0 || expect(lx, ',') != 0 || expect(lx, '[') != 0)
        return -1;
    while (!is_punct(lx, ']')) {
        if (expect(lx, '{') != 0 || option(lx, sd) != 0 || expect(lx, '}') != 0)
            return -1;
        if (is_punct(lx, ',') && next(lx) != 0)
            return -1;
    }
    if (next(lx) != 0)
        return -1;
    return expect(lx, '}');
}

static void side_init(struct sbx_tls_side *sd) {
    memset(sd, 0, sizeof *sd);
    sd->fail_if_no_peer_cert = -1;
    sd->secure_renegotiate = -1;
    sd->depth = -1;
}

/* See tls_opts.h. out is fully written (defaults) even on -1. */
int sbx_tls_opts_parse(const char *text, size_t len, struct sbx_tls_opts *out, char *why,
                       size_t cap) {
    struct lexer lx = {.s = text, .len = len, .line = 1, .why = why, .cap = cap};
    side_init(&out->server);
    side_init(&out->client);
    if (cap > 0)
        why[0] = '\0';
    if (next(&lx) != 0 || expect(&lx, '[') != 0)
        return -1;
    while (!is_punct(&lx, ']')) {
        if (side(&lx, out) != 0)
            return -1;
        if (is_punct(&lx, ',') && next(&lx) != 0)
            return -1;
        if (lx.kind == T_EOF)
            return fail(&lx, "unterminated list");
    }
    if (next(&lx) != 0 || expect(&lx, '.') != 0)
        return -1;
    if (lx.kind != T_EOF)
        return fail(&lx, "text after the terminating '.'");
    if (!out->server.present && !out->client.present)
        return fail(&lx, "neither server nor client options");
    return 0;
}

/* See tls_opts.h. */
int sbx_tls_opts_load(const char *path, struct sbx_tls_opts *out, char *why, size_t cap) {
    char *buf = NULL;
    size_t n = 0;
    int rc = -1;
    FILE *f = fopen(path, "re");
    if (f == NULL) {
        snprintf(why, cap, "cannot open the optfile %s: %s", path, strerror(errno));
        goto done;
    }
    buf = malloc(65537);
    if (buf == NULL) {
        snprintf(why, cap, "out of memory");
        goto done;
    }
    n = fread(buf, 1, 65537, f);
    if (ferror(f) || n > 65536) {
        snprintf(why, cap, "cannot read the optfile %s (or it is over 64 KiB)", path);
        goto done;
    }
    rc = sbx_tls_opts_parse(buf, n, out, why, cap);
done:
    free(buf);
    if (f != NULL)
        fclose(f);
    return rc;
}

/* Writes s as an Erlang string literal. */
static void put_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* Writes one side's given options. */
static void put_side(FILE *f, const char *name, const struct sbx_tls_side *sd) {
    const char *sep = "";
    fprintf(f, "{%s, [", name);
    const struct { const char *key; const char *val; } paths[] = {
        {"certfile", sd->certfile}, {"keyfile", sd->keyfile}, {"cacertfile", sd->cacertfile}};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        if (paths[i].val[0] == '\0')
            continue;
        fprintf(f, "%s{%s, ", sep, paths[i].key);
        put_string(f, paths[i].val);
        fputc('}', f);
        sep = ", ";
    }
    if (sd->verify != SBX_TLS_VERIFY_DEFAULT) {
        fprintf(f, "%s{verify, %s}", sep,
                sd->verify == SBX_TLS_VERIFY_PEER ? "verify_peer" : "verify_none");
        sep = ", ";
    }
    if (sd->fail_if_no_peer_cert >= 0) {
        fprintf(f, "%s{fail_if_no_peer_cert, %s}", sep, sd->fail_if_no_peer_cert ? "true" : "false");
        sep = ", ";
    }
    if (sd->secure_renegotiate >= 0) {
        fprintf(f, "%s{secure_renegotiate, %s}", sep, sd->secure_renegotiate ? "true" : "false");
        sep = ", ";
    }
    if (sd->depth >= 0) {
        fprintf(f, "%s{depth, %d}", sep, sd->depth);
        sep = ", ";
    }
    if (sd->versions != 0) {
        fprintf(f, "%s{versions, [%s%s%s]}", sep, sd->versions & SBX_TLS_V12 ? "'tlsv1.2'" : "",
                sd->versions == (SBX_TLS_V12 | SBX_TLS_V13) ? ", " : "",
                sd->versions & SBX_TLS_V13 ? "'tlsv1.3'" : "");
        sep = ", ";
    }
    if (sd->sni_disable) {
        fprintf(f, "%s{server_name_indication, disable}", sep);
    } else if (sd->sni[0] != '\0') {
        fprintf(f, "%s{server_name_indication, ", sep);
        put_string(f, sd->sni);
        fputc('}', f);
    }
    fputs("]}", f);
}

/* See tls_opts.h. */
int sbx_tls_opts_write(FILE *f, const struct sbx_tls_opts *opts) {
    fputc('[', f);
    if (opts->server.present)
        put_side(f, "server", &opts->server);
    if (opts->server.present && opts->client.present)
        fputs(",\n ", f);
    if (opts->client.present)
        put_side(f, "client", &opts->client);
    fputs("].\n", f);
    return ferror(f) ? -1 : 0;
}
