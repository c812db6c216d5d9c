/* Unit tests for the docker backend's pure parts (backends/docker/json.c, tar.c): the
 * container create body, stats samples to metrics as the docker CLI computes them, the
 * top answer to the processes list, image references, and one-file tars made and read. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/docker/dk.h"
#include "backends/docker/docker_config.h"

/* ---- create body ------------------------------------------------------------------- */

static char *xstrdup(const char *s) {
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

/* A config with every docker key set. */
static void full_config(struct sbx_config *c) {
    memset(c, 0, sizeof *c);
    c->type = SBX_TYPE_DOCKER;
    c->schema = &sbx_docker_config_schema;
    c->image = xstrdup("sandboxd-test/busybox:1");
    c->cmd.n = 2;
    c->cmd.v = calloc(3, sizeof *c->cmd.v);
    c->cmd.v[0] = xstrdup("sleep");
    c->cmd.v[1] = xstrdup("100");
    c->env.n = 1;
    c->env.v = calloc(1, sizeof *c->env.v);
    c->env.v[0].key = xstrdup("A");
    c->env.v[0].value = xstrdup("b=c");
    c->labels.n = 1;
    c->labels.v = calloc(1, sizeof *c->labels.v);
    c->labels.v[0].key = xstrdup("team");
    c->labels.v[0].value = xstrdup("x");
    c->cwd = xstrdup("sub");
    c->nports = 2;
    c->ports = calloc(2, sizeof *c->ports);
    c->ports[0] = (struct sbx_port){.host = 8080, .container = 80, .proto = "tcp"};
    c->ports[1] = (struct sbx_port){.host = 0, .container = 53, .proto = "udp"};
    c->volumes.n = 1;
    c->volumes.v = calloc(2, sizeof *c->volumes.v);
    c->volumes.v[0] = xstrdup("/data:/data:ro");
    c->memory_mb = 64;
    c->cpus = 0.5;
    c->pids_limit = 32;
    c->network = xstrdup("none");
}

static void test_create_body_full(void **state) {
    (void)state;
    struct sbx_config c;
    full_config(&c);
    struct dk_create_spec s = {.cfg = &c, .id = "web1", .node = "n@h", .workspace = "/w/ws"};
    json_t *b = dk_create_body(&s);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "Image")), "sandboxd-test/busybox:1");
    json_t *cmd = json_object_get(b, "Cmd");
    assert_int_equal(json_array_size(cmd), 2);
    assert_string_equal(json_string_value(json_array_get(cmd, 1)), "100");
    json_t *env = json_object_get(b, "Env");
    assert_string_equal(json_string_value(json_array_get(env, 0)), "SANDBOX_ID=web1");
    assert_string_equal(json_string_value(json_array_get(env, 1)), "A=b=c");
    assert_string_equal(json_string_value(json_object_get(b, "WorkingDir")), "/app/sub");
    json_t *labels = json_object_get(b, "Labels");
    assert_string_equal(json_string_value(json_object_get(labels, "sandboxd.id")), "web1");
    assert_string_equal(json_string_value(json_object_get(labels, "sandboxd.node")), "n@h");
    assert_string_equal(json_string_value(json_object_get(labels, "team")), "x");
    json_t *exposed = json_object_get(b, "ExposedPorts");
    assert_non_null(json_object_get(exposed, "80/tcp"));
    assert_non_null(json_object_get(exposed, "53/udp"));
    json_t *hc = json_object_get(b, "HostConfig");
    json_t *pb = json_object_get(hc, "PortBindings");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(pb, "80/tcp"), 0), "HostPort")),
        "8080");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(json_object_get(pb, "53/udp"), 0), "HostPort")),
        "");
    json_t *binds = json_object_get(hc, "Binds");
    assert_int_equal(json_array_size(binds), 2);
    assert_string_equal(json_string_value(json_array_get(binds, 0)), "/w/ws:/app");
    assert_string_equal(json_string_value(json_array_get(binds, 1)), "/data:/data:ro");
    assert_int_equal(json_integer_value(json_object_get(hc, "Memory")), 64 * 1048576);
    assert_int_equal(json_integer_value(json_object_get(hc, "NanoCpus")), 500000000);
    assert_int_equal(json_integer_value(json_object_get(hc, "PidsLimit")), 32);
    assert_string_equal(json_string_value(json_object_get(hc, "NetworkMode")), "none");
    json_decref(b);
    sbx_config_free(&c);
}

static void test_create_body_minimal(void **state) {
    (void)state;
    struct sbx_config c;
    memset(&c, 0, sizeof c);
    c.schema = &sbx_docker_config_schema; /* it frees the docker fields */
    c.image = xstrdup("img");
    c.cwd = xstrdup("/srv");
    struct dk_create_spec s = {.cfg = &c, .id = "a", .node = "n@h", .workspace = "/ws"};
    json_t *b = dk_create_body(&s);
    assert_non_null(b);
    assert_null(json_object_get(b, "Cmd")); /* the image's own command */
    assert_string_equal(json_string_value(json_object_get(b, "WorkingDir")), "/srv");
    json_t *hc = json_object_get(b, "HostConfig");
    assert_null(json_object_get(hc, "Memory"));
    assert_null(json_object_get(hc, "NanoCpus"));
    assert_null(json_object_get(hc, "PidsLimit"));
    assert_null(json_object_get(hc, "NetworkMode"));
    assert_int_equal(json_object_size(json_object_get(hc, "PortBindings")), 0);
    json_decref(b);
    sbx_config_free(&c);
}

static void test_create_body_refuses_non_utf8(void **state) {
    (void)state;
    struct sbx_config c;
    memset(&c, 0, sizeof c);
    c.schema = &sbx_docker_config_schema; /* it frees the docker fields */
    c.image = xstrdup("img");
    c.env.n = 1;
    c.env.v = calloc(1, sizeof *c.env.v);
    c.env.v[0].key = xstrdup("K");
    c.env.v[0].value = xstrdup("\xff\xfe");
    struct dk_create_spec s = {.cfg = &c, .id = "a", .node = "n@h", .workspace = "/ws"};
    assert_null(dk_create_body(&s));
    sbx_config_free(&c);
}

/* ---- stats ------------------------------------------------------------------------- */

static void test_stats_cgroup_v1(void **state) {
    (void)state;
    const char *j =
        "{\"read\":\"x\",\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":1200,\"percpu_usage\":[1,2,3,4]},"
        "\"system_cpu_usage\":11000,\"online_cpus\":2},"
        "\"precpu_stats\":{\"cpu_usage\":{\"total_usage\":1000},\"system_cpu_usage\":10000},"
        "\"memory_stats\":{\"usage\":1000,\"limit\":4096,\"stats\":{\"total_inactive_file\":300,"
        "\"inactive_file\":999}},\"pids_stats\":{\"current\":3},"
        "\"networks\":{\"eth0\":{\"rx_bytes\":10,\"tx_bytes\":20},\"eth1\":{\"rx_bytes\":1,\"tx_bytes\":2}}}";
    struct dk_metrics m;
    memset(&m, 0, sizeof m);
    assert_int_equal(dk_stats_parse(j, strlen(j), &m), 0);
    /* (200 / 1000) * 2 cpus * 100 */
    assert_true(m.cpu_percent > 39.999 && m.cpu_percent < 40.001);
    assert_int_equal(m.memory_bytes, 700);
    assert_int_equal(m.memory_limit_bytes, 4096);
    assert_int_equal(m.pids, 3);
    assert_int_equal(m.rx_bytes, 11);
    assert_int_equal(m.tx_bytes, 22);
}

static void test_stats_cgroup_v2_and_percpu(void **state) {
    (void)state;
    /* No online_cpus: the length of percpu_usage; v2's inactive_file. */
    const char *j =
        "{\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":500,\"percpu_usage\":[1,2,3,4]},"
        "\"system_cpu_usage\":2000},"
        "\"precpu_stats\":{\"cpu_usage\":{\"total_usage\":400},\"system_cpu_usage\":1000},"
        "\"memory_stats\":{\"usage\":5000,\"limit\":9000,\"stats\":{\"inactive_file\":1000}}}";
    struct dk_metrics m;
    memset(&m, 0, sizeof m);
    assert_int_equal(dk_stats_parse(j, strlen(j), &m), 0);
    assert_true(m.cpu_percent > 39.999 && m.cpu_percent < 40.001); /* 100/1000*4*100 */
    assert_int_equal(m.memory_bytes, 4000);
    assert_int_equal(m.pids, 0);
    assert_int_equal(m.rx_bytes, 0);
}

static void test_stats_first_sample_and_garbage(void **state) {
    (void)state;
    struct dk_metrics m;
    /* The first sample of a stream has empty precpu_stats: 0 %, not a huge number. */
    const char *first = "{\"cpu_stats\":{\"cpu_usage\":{\"total_usage\":5},\"system_cpu_usage\":9,"
                        "\"online_cpus\":1},\"precpu_stats\":{\"cpu_usage\":{}},"
                        "\"memory_stats\":{\"usage\":10,\"stats\":{\"inactive_file\":20}}}";
    memset(&m, 0, sizeof m);
    assert_int_equal(dk_stats_parse(first, strlen(first), &m), 0);
    assert_true(m.cpu_percent == 0.0);
    assert_int_equal(m.memory_bytes, 10); /* inactive above usage is ignored */
    /* Wrong types count as absent; non-JSON and non-stats are refused. */
    const char *typed = "{\"cpu_stats\":\"x\",\"memory_stats\":{\"usage\":-5,\"limit\":\"big\"}}";
    assert_int_equal(dk_stats_parse(typed, strlen(typed), &m), 0);
    assert_int_equal(m.memory_bytes, 0);
    assert_int_equal(m.memory_limit_bytes, 0);
    assert_int_equal(dk_stats_parse("{", 1, &m), -1);
    assert_int_equal(dk_stats_parse("[1]", 3, &m), -1);
    assert_int_equal(dk_stats_parse("{\"a\":1}", 7, &m), -1);
}

static void test_metrics_encode(void **state) {
    (void)state;
    struct dk_metrics m = {.have = 1, .cpu_percent = 1.5, .memory_bytes = 7, .memory_limit_bytes = 8,
                           .pids = 2, .rx_bytes = 3, .tx_bytes = 4, .ts = 99};
    ei_x_buff x;
    ei_x_new(&x);
    dk_metrics_encode(&m, &x);
    int idx = 0, arity;
    assert_int_equal(ei_decode_map_header(x.buff, &idx, &arity), 0);
    assert_int_equal(arity, 7);
    char atom[MAXATOMLEN];
    assert_int_equal(ei_decode_atom(x.buff, &idx, atom), 0);
    assert_string_equal(atom, "cpu_percent");
    double d;
    assert_int_equal(ei_decode_double(x.buff, &idx, &d), 0);
    assert_true(d == 1.5);
    ei_x_free(&x);
}

/* ---- top --------------------------------------------------------------------------- */

struct proc {
    long pid;
    char name[64];
    char status[32];
    unsigned long long mem;
    double cpu;
};

/* Decodes a processes list into v (at most cap); returns the count. */
static int decode_procs(const char *buf, struct proc *v, int cap) {
    int idx = 0, n, arity;
    assert_int_equal(ei_decode_list_header(buf, &idx, &n), 0);
    assert_true(n <= cap);
    for (int i = 0; i < n; i++) {
        assert_int_equal(ei_decode_map_header(buf, &idx, &arity), 0);
        assert_int_equal(arity, 5);
        for (int k = 0; k < 5; k++) {
            char key[MAXATOMLEN];
            assert_int_equal(ei_decode_atom(buf, &idx, key), 0);
            if (strcmp(key, "pid") == 0) {
                assert_int_equal(ei_decode_long(buf, &idx, &v[i].pid), 0);
            } else if (strcmp(key, "name") == 0) {
                long len;
                assert_int_equal(ei_decode_binary(buf, &idx, v[i].name, &len), 0);
                v[i].name[len] = '\0';
            } else if (strcmp(key, "status") == 0) {
                assert_int_equal(ei_decode_atom(buf, &idx, v[i].status), 0);
            } else if (strcmp(key, "memory_bytes") == 0) {
                assert_int_equal(ei_decode_ulonglong(buf, &idx, &v[i].mem), 0);
            } else {
                assert_string_equal(key, "cpu_percent");
                assert_int_equal(ei_decode_double(buf, &idx, &v[i].cpu), 0);
            }
        }
    }
    return n;
}

static void test_top(void **state) {
    (void)state;
    const char *j = "{\"Titles\":[\"PID\",\"COMMAND\",\"STAT\",\"RSS\",\"%CPU\"],"
                    "\"Processes\":[[\"101\",\"sleep\",\"S\",\"1440\",\"0.5\"],"
                    "[\"102\",\"sh\",\"Rs+\",\"12\",\"12.0\"],"
                    "[\"x\",\"bad\",\"S\",\"1\",\"1\"],[\"103\"]]}";
    ei_x_buff x;
    struct proc v[8];
    memset(v, 0, sizeof v);
    ei_x_new(&x);
    assert_int_equal(dk_top_encode(j, strlen(j), &x), 0);
    assert_int_equal(decode_procs(x.buff, v, 8), 3);
    assert_int_equal(v[0].pid, 101);
    assert_string_equal(v[0].name, "sleep");
    assert_string_equal(v[0].status, "sleeping");
    assert_int_equal(v[0].mem, 1440 * 1024);
    assert_true(v[0].cpu == 0.5);
    assert_string_equal(v[1].status, "running");
    assert_int_equal(v[2].pid, 103); /* short row: only the pid is known */
    assert_string_equal(v[2].name, "");
    assert_string_equal(v[2].status, "other");
    assert_int_equal(v[2].mem, 0);
    ei_x_free(&x);
}

static void test_top_refused_and_empty(void **state) {
    (void)state;
    ei_x_buff x;
    ei_x_new(&x);
    const char *nopid = "{\"Titles\":[\"UID\",\"CMD\"],\"Processes\":[]}";
    assert_int_equal(dk_top_encode(nopid, strlen(nopid), &x), -1);
    assert_int_equal(x.index, 0);
    assert_int_equal(dk_top_encode("nonsense", 8, &x), -1);
    const char *none = "{\"Titles\":[\"PID\"],\"Processes\":null}";
    assert_int_equal(dk_top_encode(none, strlen(none), &x), 0);
    int idx = 0, n = -1;
    assert_int_equal(ei_decode_list_header(x.buff, &idx, &n), 0);
    assert_int_equal(n, 0);
    ei_x_free(&x);
}

/* ---- ports ------------------------------------------------------------------------- */

static void test_ports_parse(void **state) {
    (void)state;
    const char *j = "{\"NetworkSettings\":{\"Ports\":{"
                    "\"8000/tcp\":[{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"18080\"},"
                    "{\"HostIp\":\"::\",\"HostPort\":\"18080\"}],"
                    "\"53/udp\":[{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"32768\"}],"
                    "\"9000/tcp\":null,\"bad\":[{\"HostPort\":\"1\"}],"
                    "\"7/tcp\":[{\"HostPort\":\"99999\"},{\"HostPort\":7}]}}}";
    struct dk_port p[4];
    int n = dk_ports_parse(j, strlen(j), p, 4);
    assert_int_equal(n, 2);
    int tcp = strcmp(p[0].proto, "tcp") == 0 ? 0 : 1;
    assert_int_equal(p[tcp].host, 18080);
    assert_int_equal(p[tcp].container, 8000);
    assert_int_equal(p[1 - tcp].host, 32768);
    assert_string_equal(p[1 - tcp].proto, "udp");
    assert_int_equal(dk_ports_parse(j, strlen(j), p, 1), 1);
    assert_int_equal(dk_ports_parse("{}", 2, p, 4), 0);
    ei_x_buff x;
    ei_x_new(&x);
    dk_ports_encode(p, 0, &x);
    int idx = 0, arity = -1;
    assert_int_equal(ei_decode_list_header(x.buff, &idx, &arity), 0);
    assert_int_equal(arity, 0);
    ei_x_free(&x);
}

static void test_ip_parse(void **state) {
    (void)state;
    char ip[48];
    const char *a = "{\"NetworkSettings\":{\"IPAddress\":\"172.17.0.5\"}}";
    dk_ip_parse(a, strlen(a), ip, sizeof ip);
    assert_string_equal(ip, "172.17.0.5");
    const char *b = "{\"NetworkSettings\":{\"IPAddress\":\"\",\"Networks\":{\"mynet\":"
                    "{\"IPAddress\":\"10.1.2.3\"}}}}";
    dk_ip_parse(b, strlen(b), ip, sizeof ip);
    assert_string_equal(ip, "10.1.2.3");
    const char *c = "{\"NetworkSettings\":{\"IPAddress\":\"1.2.3.4; rm\"}}";
    dk_ip_parse(c, strlen(c), ip, sizeof ip);
    assert_string_equal(ip, "");
    dk_ip_parse("null", 4, ip, sizeof ip);
    assert_string_equal(ip, "");
}

/* ---- paths (core/config.c sbx_decode_path, used for backend copies) ---------------- */

/* Decodes s (as a binary) with sbx_decode_path: 0 and out, or -1 and the why. */
static int decode_path_of(const char *s, char *out, size_t cap, const char **why) {
    ei_x_buff x;
    struct sbx_badarg bad = {0};
    ei_x_new(&x);
    ei_x_encode_binary(&x, s, (long)strlen(s));
    int idx = 0;
    int rc = sbx_decode_path(x.buff, &idx, out, cap, &bad);
    *why = bad.why;
    ei_x_free(&x);
    return rc;
}

static void test_decode_path(void **state) {
    (void)state;
    char out[1100];
    const char *why = NULL;
    assert_int_equal(decode_path_of("/etc//./hostname", out, sizeof out, &why), 0);
    assert_string_equal(out, "/etc/hostname");
    assert_int_equal(decode_path_of("sub/./f.txt", out, sizeof out, &why), 0);
    assert_string_equal(out, "sub/f.txt");
    assert_int_equal(decode_path_of("/tmp/../etc", out, sizeof out, &why), -1);
    assert_string_equal(why, "dot_dot");
    assert_int_equal(decode_path_of("/", out, sizeof out, &why), -1);
    assert_string_equal(why, "empty");
    /* The relative-only decoder still refuses absolute paths. */
    ei_x_buff x;
    struct sbx_badarg bad = {0};
    ei_x_new(&x);
    ei_x_encode_binary(&x, "/etc", 4);
    int idx = 0;
    assert_int_equal(sbx_decode_rel_path(x.buff, &idx, out, sizeof out, &bad), -1);
    assert_string_equal(bad.why, "absolute");
    ei_x_free(&x);
}

/* ---- image references --------------------------------------------------------------- */

static void test_image_split(void **state) {
    (void)state;
    char n[200], t[100];
    dk_image_split("busybox", n, sizeof n, t, sizeof t);
    assert_string_equal(n, "busybox");
    assert_string_equal(t, "latest");
    dk_image_split("sandboxd-test/busybox:1", n, sizeof n, t, sizeof t);
    assert_string_equal(n, "sandboxd-test/busybox");
    assert_string_equal(t, "1");
    dk_image_split("localhost:5000/app", n, sizeof n, t, sizeof t);
    assert_string_equal(n, "localhost:5000/app");
    assert_string_equal(t, "latest");
    dk_image_split("app@sha256:abcd", n, sizeof n, t, sizeof t);
    assert_string_equal(n, "app@sha256:abcd");
    assert_string_equal(t, "");
}

/* ---- tar ---------------------------------------------------------------------------- */

static void test_tar_roundtrip(void **state) {
    (void)state;
    size_t len = 100000;
    char *data = malloc(len);
    assert_non_null(data);
    for (size_t i = 0; i < len; i++)
        data[i] = (char)(i * 7);
    char *tar = NULL, *out = NULL;
    size_t tar_len = 0, out_len = 0;
    const char *why = NULL;
    assert_int_equal(dk_tar_make("app/sub/file.bin", data, len, &tar, &tar_len), 0);
    assert_true(tar_len > len);
    assert_int_equal(dk_tar_read_first(tar, tar_len, DK_COPY_MAX, &out, &out_len, &why), 0);
    assert_int_equal(out_len, len);
    assert_memory_equal(out, data, len);
    free(out);
    out = NULL;
    /* The cap applies to the entry. */
    assert_int_equal(dk_tar_read_first(tar, tar_len, len - 1, &out, &out_len, &why), -1);
    assert_string_equal(why, "too_large");
    free(tar);
    /* An empty file. */
    assert_int_equal(dk_tar_make("e", "", 0, &tar, &tar_len), 0);
    assert_int_equal(dk_tar_read_first(tar, tar_len, 10, &out, &out_len, &why), 0);
    assert_int_equal(out_len, 0);
    free(out);
    free(tar);
    free(data);
}

/* A tar whose first entry is a directory, made with libarchive directly. */
static void make_dir_tar(char *buf, size_t cap, size_t *used) {
    struct archive *a = archive_write_new();
    struct archive_entry *e = archive_entry_new();
    assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
    assert_int_equal(archive_write_open_memory(a, buf, cap, used), ARCHIVE_OK);
    archive_entry_set_pathname(e, "etc");
    archive_entry_set_filetype(e, AE_IFDIR);
    archive_entry_set_perm(e, 0755);
    assert_int_equal(archive_write_header(a, e), ARCHIVE_OK);
    archive_write_close(a);
    archive_entry_free(e);
    archive_write_free(a);
}

static void test_tar_refusals(void **state) {
    (void)state;
    static char buf[65536];
    size_t used = 0;
    char *out = NULL;
    size_t out_len = 0;
    const char *why = NULL;
    make_dir_tar(buf, sizeof buf, &used);
    assert_int_equal(dk_tar_read_first(buf, used, 100, &out, &out_len, &why), -1);
    assert_string_equal(why, "eisdir");
    /* An empty archive (two zero blocks): nothing there. */
    memset(buf, 0, 1024);
    assert_int_equal(dk_tar_read_first(buf, 1024, 100, &out, &out_len, &why), -1);
    assert_string_equal(why, "enoent");
    /* Not a tar, and a tar cut short. */
    assert_int_equal(dk_tar_read_first("garbage garbage", 15, 100, &out, &out_len, &why), -1);
    assert_string_equal(why, "einval");
    char *tar = NULL;
    size_t tar_len = 0;
    assert_int_equal(dk_tar_make("f", "0123456789", 10, &tar, &tar_len), 0);
    assert_int_equal(dk_tar_read_first(tar, 520, 100, &out, &out_len, &why), -1);
    assert_null(out);
    free(tar);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_body_full),
        cmocka_unit_test(test_create_body_minimal),
        cmocka_unit_test(test_create_body_refuses_non_utf8),
        cmocka_unit_test(test_stats_cgroup_v1),
        cmocka_unit_test(test_stats_cgroup_v2_and_percpu),
        cmocka_unit_test(test_stats_first_sample_and_garbage),
        cmocka_unit_test(test_metrics_encode),
        cmocka_unit_test(test_top),
        cmocka_unit_test(test_top_refused_and_empty),
        cmocka_unit_test(test_ports_parse),
        cmocka_unit_test(test_ip_parse),
        cmocka_unit_test(test_decode_path),
        cmocka_unit_test(test_image_split),
        cmocka_unit_test(test_tar_roundtrip),
        cmocka_unit_test(test_tar_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
