/* Unit tests for dist/tls_opts.h: the ssl_dist optfile parser (every key sandboxd accepts,
 * refusals naming the unknown key, syntax errors with their line) and the writer whose
 * output the parser reads back the same. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dist/tls_opts.h"

static int parse(const char *text, struct sbx_tls_opts *o, char *why, size_t cap) {
    /* A private copy without a terminating NUL: the parser must respect len. */
    size_t n = strlen(text);
    char *c = malloc(n > 0 ? n : 1);
    assert_non_null(c);
    memcpy(c, text, n);
    int rc = sbx_tls_opts_parse(c, n, o, why, cap);
    free(c);
    return rc;
}

static const char *FULL =
    "%% the cluster's optfile\n"
    "[{server, [{certfile, \"/etc/ssl/node.pem\"}, {keyfile, \"/etc/ssl/node.key\"},\n"
    "           {cacertfile, \"/etc/ssl/ca.pem\"}, {verify, verify_peer},\n"
    "           {fail_if_no_peer_cert, true}, {secure_renegotiate, true},\n"
    "           {depth, 3}, {versions, ['tlsv1.2', 'tlsv1.3']}]},\n"
    " {client, [{certfile, \"/etc/ssl/c \\\"q\\\".pem\"}, {verify, verify_none},\n"
    "           {server_name_indication, \"node.example\"}, {versions, ['tlsv1.3']}]}].\n";

static void test_every_key(void **state) {
    (void)state;
    struct sbx_tls_opts o;
    char why[200];
    assert_int_equal(parse(FULL, &o, why, sizeof why), 0);
    assert_true(o.server.present);
    assert_string_equal(o.server.certfile, "/etc/ssl/node.pem");
    assert_string_equal(o.server.keyfile, "/etc/ssl/node.key");
    assert_string_equal(o.server.cacertfile, "/etc/ssl/ca.pem");
    assert_int_equal(o.server.verify, SBX_TLS_VERIFY_PEER);
    assert_int_equal(o.server.fail_if_no_peer_cert, 1);
    assert_int_equal(o.server.secure_renegotiate, 1);
    assert_int_equal(o.server.depth, 3);
    assert_int_equal(o.server.versions, SBX_TLS_V12 | SBX_TLS_V13);
    assert_true(o.client.present);
    assert_string_equal(o.client.certfile, "/etc/ssl/c \"q\".pem");
    assert_string_equal(o.client.keyfile, "");
    assert_int_equal(o.client.verify, SBX_TLS_VERIFY_NONE);
    assert_int_equal(o.client.fail_if_no_peer_cert, -1);
    assert_int_equal(o.client.depth, -1);
    assert_int_equal(o.client.versions, SBX_TLS_V13);
    assert_string_equal(o.client.sni, "node.example");
    assert_false(o.client.sni_disable);
}

static void test_unknown_key_named(void **state) {
    (void)state;
    struct sbx_tls_opts o;
    char why[200];
    assert_int_equal(parse("[{server, [{certfile, \"a\"},\n {ciphers, [\"x\"]}]}].", &o, why,
                           sizeof why), -1);
    assert_non_null(strstr(why, "ciphers"));
    assert_non_null(strstr(why, "line 2"));
    assert_int_equal(parse("[{server, [{password, \"secret\"}]}].", &o, why, sizeof why), -1);
    assert_non_null(strstr(why, "password"));
    assert_null(strstr(why, "secret"));
}

static void test_bad_values_and_syntax(void **state) {
    (void)state;
    struct sbx_tls_opts o;
    char why[200];
    const char *bad[] = {
        "",
        "[].",
        "[{server, []}]",                           /* no final dot */
        "[{server, []}]. x",                        /* text after it */
        "[{peer, []}].",                            /* neither server nor client */
        "[{server, []}, {server, []}].",            /* twice */
        "[{server, [{verify, maybe}]}].",
        "[{server, [{depth, -1}]}].",
        "[{server, [{depth, 1000}]}].",
        "[{server, [{fail_if_no_peer_cert, yes}]}].",
        "[{server, [{versions, ['tlsv1.1']}]}].",
        "[{server, [{versions, []}]}].",
        "[{server, [{certfile, \"\"}]}].",
        "[{server, [{certfile, cert}]}].",
        "[{server, [{certfile, \"unterminated}]}].",
        "[{server, [{certfile \"a\"}]}].",
        "[{server, [{certfile, \"a\"}",
        "[{server, [{certfile, \"a\"}]}]. %",
        "[{server, [{certfile, \"a\"}]}]!",
        "[{server, [{Certfile, \"a\"}]}].",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = parse(bad[i], &o, why, sizeof why);
        if (i == 17) { /* a trailing comment is fine */
            assert_int_equal(rc, 0);
            continue;
        }
        if (rc != -1)
            fail_msg("accepted: %s", bad[i]);
        assert_true(why[0] != '\0');
    }
}

static void test_sni_disable_and_small_why(void **state) {
    (void)state;
    struct sbx_tls_opts o;
    char why[8];
    assert_int_equal(parse("[{client, [{server_name_indication, disable}]}].", &o, why,
                           sizeof why), 0);
    assert_true(o.client.sni_disable);
    assert_false(o.server.present);
    /* A message cut to a small buffer stays terminated. */
    assert_int_equal(parse("[{client, [{bogus, 1}]}].", &o, why, sizeof why), -1);
    assert_true(strlen(why) < sizeof why);
}

static void test_write_reads_back(void **state) {
    (void)state;
    struct sbx_tls_opts a, b;
    char why[200], *text = NULL;
    size_t len = 0;
    assert_int_equal(parse(FULL, &a, why, sizeof why), 0);
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(sbx_tls_opts_write(f, &a), 0);
    fclose(f);
    int rc = sbx_tls_opts_parse(text, len, &b, why, sizeof why);
    if (rc != 0)
        fail_msg("%s: %s", why, text);
    free(text);
    assert_memory_equal(&a, &b, sizeof a);
}

static void test_load_missing_file(void **state) {
    (void)state;
    struct sbx_tls_opts o;
    char why[300];
    assert_int_equal(sbx_tls_opts_load("/nonexistent/ssl_dist.conf", &o, why, sizeof why), -1);
    assert_non_null(strstr(why, "/nonexistent/ssl_dist.conf"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_unknown_key_named),
        cmocka_unit_test(test_bad_values_and_syntax),
        cmocka_unit_test(test_sni_disable_and_small_why),
        cmocka_unit_test(test_write_reads_back),
        cmocka_unit_test(test_load_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
