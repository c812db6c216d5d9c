/* libFuzzer target for the guest agent protocol (c_src/vmproto/agent_proto.c): what a hostile
 * guest (or a confused host) sends, as a byte stream.
 *
 * The first input byte holds options: its low 4 bits + 1 are the size of the reads the stream
 * is cut into (1..16, so frames straddle reads everywhere), and bit 4 selects a small decoder
 * buffer (256 bytes) instead of the full 1 MiB. The rest is the stream. Every frame decoded is
 * handed to every parser; what parses is encoded again and must decode and parse to the same
 * values. A decoder error resets it, as the agent does on a new HELLO. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmproto/agent_proto.h"

static uint8_t dec_buf[AGENT_MAX_PAYLOAD];
static uint8_t enc_buf[AGENT_MAX_PAYLOAD + 64];
static struct agent_exec_req exec_req;

#define INVARIANT(c)                                                                           \
    do {                                                                                       \
        if (!(c)) {                                                                            \
            fprintf(stderr, "INVARIANT: %s (%s:%d)\n", #c, __FILE__, __LINE__);                \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

/* Decodes enc_buf[0..n) as one frame with a fresh decoder over its own buffer. */
static struct agent_frame redecode(size_t n, uint8_t *buf, size_t cap) {
    struct agent_dec d;
    struct agent_frame f;
    size_t used = 0;
    agent_dec_init(&d, buf, cap);
    INVARIANT(agent_dec_feed(&d, enc_buf, n, &used, &f) == AGENT_DEC_FRAME);
    INVARIANT(used == n);
    return f;
}

static int same(struct agent_str a, struct agent_str b) {
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

/* Every parser over f; re-encoding checks for the ones with encoders. */
static void check_frame(const struct agent_frame *f) {
    static uint8_t buf2[AGENT_MAX_PAYLOAD];
    struct agent_hello_req hq;
    struct agent_hello_resp hr;
    struct agent_exit_msg x;
    struct agent_err_msg em;
    struct agent_write_req wq;
    struct agent_metrics m;
    struct agent_str s;
    uint8_t stream;
    uint32_t pid, count;
    struct agent_rd r;

    INVARIANT(f->payload_len <= AGENT_MAX_PAYLOAD);
    if (agent_parse_hello_req(f, &hq) == 0) {
        size_t n = agent_enc_hello_req(enc_buf, sizeof enc_buf, f->id, hq.min_version,
                                       hq.max_version);
        INVARIANT(n == AGENT_HDR_LEN + f->payload_len);
        INVARIANT(memcmp(enc_buf + AGENT_HDR_LEN, f->payload, f->payload_len) == 0);
    }
    if (agent_parse_hello_resp(f, &hr) == 0) {
        size_t n = agent_enc_hello_resp(enc_buf, sizeof enc_buf, f->id, &hr);
        INVARIANT(n == AGENT_HDR_LEN + f->payload_len);
        struct agent_frame g = redecode(n, buf2, sizeof buf2);
        struct agent_hello_resp hr2;
        INVARIANT(agent_parse_hello_resp(&g, &hr2) == 0);
        INVARIANT(same(hr.kernel_release, hr2.kernel_release) && hr.boot_ms == hr2.boot_ms);
    }
    if (agent_parse_exec(f, &exec_req) == 0) {
        INVARIANT(exec_req.argc <= AGENT_MAX_ARGS && exec_req.envc <= AGENT_MAX_ARGS);
        INVARIANT((exec_req.flags & AGENT_EXEC_MAIN) == 0 || f->id == AGENT_MAIN_ID);
        for (uint32_t i = 0; i < exec_req.argc; i++)
            INVARIANT(exec_req.argv[i].ptr >= f->payload &&
                      exec_req.argv[i].ptr + exec_req.argv[i].len <= f->payload + f->payload_len);
    }
    if (agent_parse_started(f, &pid) == 0)
        INVARIANT(agent_enc_started(enc_buf, sizeof enc_buf, f->id, pid) == AGENT_HDR_LEN + 4);
    if (agent_parse_out(f, &stream, &s) == 0) {
        size_t n = agent_enc_out(enc_buf, sizeof enc_buf, f->id, stream, s.ptr, s.len);
        INVARIANT(n == AGENT_HDR_LEN + f->payload_len);
        INVARIANT(memcmp(enc_buf + AGENT_HDR_LEN, f->payload, f->payload_len) == 0);
    }
    if (agent_parse_exit(f, &x) == 0) {
        size_t n = agent_enc_exit(enc_buf, sizeof enc_buf, f->id, &x);
        INVARIANT(memcmp(enc_buf + AGENT_HDR_LEN, f->payload, f->payload_len) == 0 && n > 0);
    }
    if (agent_parse_bytes(f, &s) == 0)
        INVARIANT(agent_enc_bytes(enc_buf, sizeof enc_buf, AGENT_DATA, f->id, s.ptr, s.len) ==
                  AGENT_HDR_LEN + f->payload_len);
    (void)agent_parse_empty(f);
    if (agent_parse_write(f, &wq) == 0)
        INVARIANT(wq.path.len + 8 == f->payload_len);
    if (agent_parse_read(f, &s) == 0)
        INVARIANT(s.len + 4 == f->payload_len);
    if (agent_parse_err(f, &em) == 0)
        INVARIANT(em.text.len + 8 == f->payload_len);
    if (agent_parse_metrics(f, &m) == 0)
        INVARIANT(agent_enc_metrics(enc_buf, sizeof enc_buf, f->id, &m) ==
                  AGENT_HDR_LEN + f->payload_len);
    if (agent_ps_begin(f, &r, &count) == 0) {
        struct agent_wr w;
        struct agent_ps_entry e;
        uint32_t got = 0;
        agent_ps_list_begin(&w, enc_buf, sizeof enc_buf, f->id);
        while (got < count && agent_ps_next(&r, &e) == 0) {
            INVARIANT(agent_ps_list_add(&w, &e) == 1);
            got++;
        }
        if (got == count && agent_rd_done(&r) == 0)
            INVARIANT(agent_ps_list_end(&w) == AGENT_HDR_LEN + f->payload_len &&
                      memcmp(enc_buf + AGENT_HDR_LEN, f->payload, f->payload_len) == 0);
    }
    (void)agent_type_name(f->type);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct agent_dec d;
    if (size < 1)
        return 0;
    size_t step = (size_t)(data[0] & 0x0f) + 1;
    size_t cap = (data[0] & 0x10) ? 256 : sizeof dec_buf;
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    agent_dec_init(&d, dec_buf, cap);
    size_t pos = 0;
    while (pos < n) {
        size_t chunk = n - pos < step ? n - pos : step;
        size_t off = 0;
        while (off < chunk) {
            struct agent_frame f;
            size_t used = 0;
            enum agent_dec_status st = agent_dec_feed(&d, in + pos + off, chunk - off, &used, &f);
            INVARIANT(used <= chunk - off);
            off += used;
            if (st == AGENT_DEC_FRAME) {
                INVARIANT(f.payload_len <= cap);
                check_frame(&f);
            } else if (st == AGENT_DEC_ERROR) {
                agent_dec_reset(&d);
                if (used == 0)
                    off++; /* cannot happen after a reset; keeps the loop finite regardless */
            } else {
                INVARIANT(off == chunk);
            }
        }
        pos += chunk;
    }
    return 0;
}
