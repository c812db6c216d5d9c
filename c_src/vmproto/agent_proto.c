/* The guest agent protocol (see agent_proto.h for the byte layout): the incremental frame
 * decoder, the bounded payload reader and writer, and the typed parsers and encoders. */
#include "vmproto/agent_proto.h"

#include <string.h>

static const char *const type_names[] = {
    [AGENT_HELLO] = "hello",     [AGENT_EXEC] = "exec",       [AGENT_STARTED] = "started",
    [AGENT_OUT] = "out",         [AGENT_EXIT] = "exit",       [AGENT_STDIN] = "stdin",
    [AGENT_KILL] = "kill",       [AGENT_WRITE] = "write",     [AGENT_READ] = "read",
    [AGENT_DATA] = "data",       [AGENT_END] = "end",         [AGENT_OK] = "ok",
    [AGENT_ERR] = "err",         [AGENT_PS] = "ps",           [AGENT_PS_LIST] = "ps_list",
    [AGENT_METRICS] = "metrics", [AGENT_METRICS_R] = "metrics_r", [AGENT_SHUTDOWN] = "shutdown",
};

/* Static name of a type; never NULL. */
const char *agent_type_name(unsigned type) {
    const char *name = NULL;
    if (type < sizeof type_names / sizeof type_names[0])
        name = type_names[type];
    return name != NULL ? name : "unknown";
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* ---- Decoder ---------------------------------------------------------------------------------- */

/* d is the caller's; buf stays the caller's and must outlive d. */
void agent_dec_init(struct agent_dec *d, uint8_t *buf, size_t cap) {
    d->buf = buf;
    d->cap = cap > AGENT_MAX_PAYLOAD ? AGENT_MAX_PAYLOAD : (uint32_t)cap;
    agent_dec_reset(d);
}

/* Drops any partial frame and the error state; the buffer is kept. */
void agent_dec_reset(struct agent_dec *d) {
    d->hdr_have = 0;
    d->payload_len = 0;
    d->payload_have = 0;
    d->error = 0;
}

/* Reads the header first (9 bytes, into d->hdr), checks the length against the bounds before
 * any payload byte is stored, then copies the payload into d->buf. Never reads past in[n) or
 * writes past d->buf[d->cap). */
enum agent_dec_status agent_dec_feed(struct agent_dec *d, const uint8_t *in, size_t n,
                                     size_t *used, struct agent_frame *out) {
    size_t pos = 0;
    enum agent_dec_status st = AGENT_DEC_NEED;
    if (d->error) {
        st = AGENT_DEC_ERROR;
        goto done;
    }
    while (pos < n) {
        if (d->hdr_have < AGENT_HDR_LEN) {
            /* The length's four bytes are taken alone and checked before anything else. */
            size_t take = (d->hdr_have < 4 ? 4 : AGENT_HDR_LEN) - d->hdr_have;
            if (take > n - pos)
                take = n - pos;
            memcpy(d->hdr + d->hdr_have, in + pos, take);
            d->hdr_have += (uint32_t)take;
            pos += take;
            if (d->hdr_have == 4) {
                uint32_t len = get_u32(d->hdr);
                if (len < 5 || len > AGENT_MAX_FRAME_LEN || len - 5 > d->cap) {
                    d->error = 1;
                    st = AGENT_DEC_ERROR;
                    goto done;
                }
                d->payload_len = len - 5;
            }
            if (d->hdr_have < AGENT_HDR_LEN)
                continue;
            d->payload_have = 0;
        }
        if (d->payload_have < d->payload_len) {
            size_t take = d->payload_len - d->payload_have;
            if (take > n - pos)
                take = n - pos;
            memcpy(d->buf + d->payload_have, in + pos, take);
            d->payload_have += (uint32_t)take;
            pos += take;
        }
        if (d->payload_have == d->payload_len) {
            out->type = d->hdr[4];
            out->id = get_u32(d->hdr + 5);
            out->payload = d->buf;
            out->payload_len = d->payload_len;
            d->hdr_have = 0;
            d->payload_have = 0;
            d->payload_len = 0;
            st = AGENT_DEC_FRAME;
            goto done;
        }
    }
done:
    *used = pos;
    return st;
}

/* ---- Reader ----------------------------------------------------------------------------------- */

/* r reads payload[0..len), which the caller keeps alive. */
void agent_rd_init(struct agent_rd *r, const uint8_t *payload, uint32_t len) {
    r->p = payload;
    r->left = len;
    r->err = 0;
}

/* Takes n bytes or fails (sticky); returns where they start, or NULL. */
static const uint8_t *rd_take(struct agent_rd *r, uint32_t n) {
    const uint8_t *at = NULL;
    if (!r->err && r->left >= n) {
        at = r->p;
        r->p += n;
        r->left -= n;
    } else {
        r->err = 1;
    }
    return at;
}

/* One byte, 0 on failure. */
uint8_t agent_rd_u8(struct agent_rd *r) {
    const uint8_t *p = rd_take(r, 1);
    return p != NULL ? p[0] : 0;
}

/* Big-endian u32, 0 on failure. */
uint32_t agent_rd_u32(struct agent_rd *r) {
    const uint8_t *p = rd_take(r, 4);
    return p != NULL ? get_u32(p) : 0;
}

/* Big-endian u64, 0 on failure. */
uint64_t agent_rd_u64(struct agent_rd *r) {
    const uint8_t *p = rd_take(r, 8);
    return p != NULL ? (uint64_t)get_u32(p) << 32 | get_u32(p + 4) : 0;
}

/* A length-prefixed string pointing into the payload; empty on failure. The length is
 * checked against what is left before anything is taken. */
struct agent_str agent_rd_str(struct agent_rd *r) {
    struct agent_str s = {(const uint8_t *)"", 0};
    uint32_t len = agent_rd_u32(r);
    const uint8_t *p = rd_take(r, len);
    if (p != NULL) {
        s.ptr = p;
        s.len = len;
    }
    return s;
}

/* Whether the whole payload was read without error. */
int agent_rd_done(const struct agent_rd *r) {
    return r->err || r->left != 0 ? -1 : 0;
}

/* ---- Writer ----------------------------------------------------------------------------------- */

/* The frame is built in buf[0..cap), which the caller owns. */
void agent_wr_begin(struct agent_wr *w, uint8_t *buf, size_t cap, uint8_t type, uint32_t id) {
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->err = cap < AGENT_HDR_LEN;
    if (!w->err) {
        put_u32(buf, 0);
        buf[4] = type;
        put_u32(buf + 5, id);
        w->len = AGENT_HDR_LEN;
    }
}

/* Payload bytes still allowed: the smaller of the buffer's and the protocol's room. */
size_t agent_wr_room(const struct agent_wr *w) {
    size_t room = 0;
    if (!w->err) {
        size_t by_cap = w->cap - w->len;
        size_t by_proto = 4 + (size_t)AGENT_MAX_FRAME_LEN - w->len;
        room = by_cap < by_proto ? by_cap : by_proto;
    }
    return room;
}

/* Appends n bytes or fails (sticky). */
static void wr_put(struct agent_wr *w, const void *data, size_t n) {
    if (agent_wr_room(w) < n) {
        w->err = 1;
    } else if (n > 0) {
        memcpy(w->buf + w->len, data, n);
        w->len += n;
    }
}

void agent_wr_u8(struct agent_wr *w, uint8_t v) {
    wr_put(w, &v, 1);
}

void agent_wr_u32(struct agent_wr *w, uint32_t v) {
    uint8_t b[4];
    put_u32(b, v);
    wr_put(w, b, 4);
}

void agent_wr_u64(struct agent_wr *w, uint64_t v) {
    uint8_t b[8];
    put_u32(b, (uint32_t)(v >> 32));
    put_u32(b + 4, (uint32_t)v);
    wr_put(w, b, 8);
}

/* A string whose length and bytes both fit, or nothing (and err). */
void agent_wr_str(struct agent_wr *w, const void *data, size_t len) {
    if (len > UINT32_MAX || agent_wr_room(w) < 4 + len) {
        w->err = 1;
        return;
    }
    agent_wr_u32(w, (uint32_t)len);
    wr_put(w, data, len);
}

/* Writes the len field; the frame is buf[0..returned). */
size_t agent_wr_end(struct agent_wr *w) {
    size_t total = 0;
    if (!w->err) {
        put_u32(w->buf, (uint32_t)(w->len - 4));
        total = w->len;
    }
    return total;
}

/* ---- Parsers ---------------------------------------------------------------------------------- */

/* Each parser reads the fields in their order and checks once at the end. */
int agent_parse_hello_req(const struct agent_frame *f, struct agent_hello_req *m) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    m->min_version = agent_rd_u32(&r);
    m->max_version = agent_rd_u32(&r);
    return agent_rd_done(&r);
}

int agent_parse_hello_resp(const struct agent_frame *f, struct agent_hello_resp *m) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    m->version = agent_rd_u32(&r);
    m->kernel_release = agent_rd_str(&r);
    m->agent_version = agent_rd_str(&r);
    m->boot_ms = agent_rd_u64(&r);
    return agent_rd_done(&r);
}

/* argc/envc are checked against AGENT_MAX_ARGS before any string is read. */
int agent_parse_exec(const struct agent_frame *f, struct agent_exec_req *m) {
    struct agent_rd r;
    int rc = -1;
    agent_rd_init(&r, f->payload, f->payload_len);
    m->flags = agent_rd_u32(&r);
    m->timeout_ms = agent_rd_u32(&r);
    m->argc = agent_rd_u32(&r);
    m->envc = 0;
    if (m->argc > AGENT_MAX_ARGS || (m->flags & ~AGENT_EXEC_FLAGS) != 0)
        goto out;
    if ((m->flags & AGENT_EXEC_MAIN) != 0 && f->id != AGENT_MAIN_ID)
        goto out;
    for (uint32_t i = 0; i < m->argc; i++)
        m->argv[i] = agent_rd_str(&r);
    m->envc = agent_rd_u32(&r);
    if (m->envc > AGENT_MAX_ARGS)
        goto out;
    for (uint32_t i = 0; i < m->envc; i++)
        m->env[i] = agent_rd_str(&r);
    m->cwd = agent_rd_str(&r);
    rc = agent_rd_done(&r);
out:
    return rc;
}

int agent_parse_started(const struct agent_frame *f, uint32_t *pid) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    *pid = agent_rd_u32(&r);
    return agent_rd_done(&r);
}

int agent_parse_out(const struct agent_frame *f, uint8_t *stream, struct agent_str *data) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    *stream = agent_rd_u8(&r);
    *data = agent_rd_str(&r);
    if ((*stream != 1 && *stream != 2) || data->len > AGENT_CHUNK)
        r.err = 1;
    return agent_rd_done(&r);
}

int agent_parse_exit(const struct agent_frame *f, struct agent_exit_msg *m) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    m->exit_code = (int32_t)agent_rd_u32(&r);
    m->signal = agent_rd_u32(&r);
    m->timed_out = agent_rd_u8(&r);
    return agent_rd_done(&r);
}

int agent_parse_bytes(const struct agent_frame *f, struct agent_str *data) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    *data = agent_rd_str(&r);
    if (data->len > AGENT_CHUNK)
        r.err = 1;
    return agent_rd_done(&r);
}

int agent_parse_empty(const struct agent_frame *f) {
    return f->payload_len == 0 ? 0 : -1;
}

int agent_parse_write(const struct agent_frame *f, struct agent_write_req *m) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    m->path = agent_rd_str(&r);
    m->mode = agent_rd_u32(&r);
    return agent_rd_done(&r);
}

int agent_parse_read(const struct agent_frame *f, struct agent_str *path) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    *path = agent_rd_str(&r);
    return agent_rd_done(&r);
}

int agent_parse_err(const struct agent_frame *f, struct agent_err_msg *m) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    m->err = agent_rd_u32(&r);
    m->text = agent_rd_str(&r);
    return agent_rd_done(&r);
}

int agent_parse_metrics(const struct agent_frame *f, struct agent_metrics *m) {
    struct agent_rd r;
    agent_rd_init(&r, f->payload, f->payload_len);
    m->mem_total = agent_rd_u64(&r);
    m->mem_available = agent_rd_u64(&r);
    m->cpu_user = agent_rd_u64(&r);
    m->cpu_system = agent_rd_u64(&r);
    m->cpu_idle = agent_rd_u64(&r);
    m->uptime_ms = agent_rd_u64(&r);
    m->load1 = agent_rd_u32(&r);
    m->load5 = agent_rd_u32(&r);
    m->load15 = agent_rd_u32(&r);
    m->nprocs = agent_rd_u32(&r);
    return agent_rd_done(&r);
}

/* r is left at the first entry; the caller reads count entries with agent_ps_next. */
int agent_ps_begin(const struct agent_frame *f, struct agent_rd *r, uint32_t *count) {
    agent_rd_init(r, f->payload, f->payload_len);
    *count = agent_rd_u32(r);
    return r->err ? -1 : 0;
}

int agent_ps_next(struct agent_rd *r, struct agent_ps_entry *e) {
    e->pid = agent_rd_u32(r);
    e->ppid = agent_rd_u32(r);
    e->state = agent_rd_u8(r);
    e->rss_bytes = agent_rd_u64(r);
    e->name = agent_rd_str(r);
    e->cmdline = agent_rd_str(r);
    return r->err ? -1 : 0;
}

/* ---- Encoders --------------------------------------------------------------------------------- */

size_t agent_enc_hello_req(uint8_t *buf, size_t cap, uint32_t id, uint32_t min_version,
                           uint32_t max_version) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, AGENT_HELLO, id);
    agent_wr_u32(&w, min_version);
    agent_wr_u32(&w, max_version);
    return agent_wr_end(&w);
}

size_t agent_enc_hello_resp(uint8_t *buf, size_t cap, uint32_t id,
                            const struct agent_hello_resp *m) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, AGENT_HELLO, id);
    agent_wr_u32(&w, m->version);
    agent_wr_str(&w, m->kernel_release.ptr, m->kernel_release.len);
    agent_wr_str(&w, m->agent_version.ptr, m->agent_version.len);
    agent_wr_u64(&w, m->boot_ms);
    return agent_wr_end(&w);
}

size_t agent_enc_exec(uint8_t *buf, size_t cap, uint32_t id, uint32_t flags, uint32_t timeout_ms,
                      const char *const *argv, uint32_t argc, const char *const *env,
                      uint32_t envc, const char *cwd) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, AGENT_EXEC, id);
    if (argc > AGENT_MAX_ARGS || envc > AGENT_MAX_ARGS)
        w.err = 1;
    agent_wr_u32(&w, flags);
    agent_wr_u32(&w, timeout_ms);
    agent_wr_u32(&w, argc);
    for (uint32_t i = 0; i < argc && !w.err; i++)
        agent_wr_str(&w, argv[i], strlen(argv[i]));
    agent_wr_u32(&w, envc);
    for (uint32_t i = 0; i < envc && !w.err; i++)
        agent_wr_str(&w, env[i], strlen(env[i]));
    agent_wr_str(&w, cwd != NULL ? cwd : "", cwd != NULL ? strlen(cwd) : 0);
    return agent_wr_end(&w);
}

size_t agent_enc_started(uint8_t *buf, size_t cap, uint32_t id, uint32_t pid) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, AGENT_STARTED, id);
    agent_wr_u32(&w, pid);
    return agent_wr_end(&w);
}

size_t agent_enc_out(uint8_t *buf, size_t cap, uint32_t id, uint8_t stream, const void *data,
                     size_t len) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, AGENT_OUT, id);
    if (len > AGENT_CHUNK)
        w.err = 1;
    agent_wr_u8(&w, stream);
    agent_wr_str(&w, data, len);
    return agent_wr_end(&w);
}

size_t agent_enc_exit(uint8_t *buf, size_t cap, uint32_t id, const struct agent_exit_msg *m) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, AGENT_EXIT, id);
    agent_wr_u32(&w, (uint32_t)m->exit_code);
    agent_wr_u32(&w, m->signal);
    agent_wr_u8(&w, m->timed_out);
    return agent_wr_end(&w);
}

size_t agent_enc_bytes(uint8_t *buf, size_t cap, uint8_t type, uint32_t id, const void *data,
                       size_t len) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, type, id);
    if (len > AGENT_CHUNK)
        w.err = 1;
    agent_wr_str(&w, data, len);
    return agent_wr_end(&w);
}

size_t agent_enc_empty(uint8_t *buf, size_t cap, uint8_t type, uint32_t id) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, type, id);
    return agent_wr_end(&w);
}

size_t agent_enc_write(uint8_t *buf, size_t cap, uint32_t id, const char *path, uint32_t mode) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, AGENT_WRITE, id);
    agent_wr_str(&w, path, strlen(path));
    agent_wr_u32(&w, mode);
    return agent_wr_end(&w);
}

size_t agent_enc_read(uint8_t *buf, size_t cap, uint32_t id, const char *path) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, AGENT_READ, id);
    agent_wr_str(&w, path, strlen(path));
    return agent_wr_end(&w);
}

size_t agent_enc_err(uint8_t *buf, size_t cap, uint32_t id, uint32_t err, const char *text) {
    struct agent_wr w;
    size_t len = strlen(text);
    agent_wr_begin(&w, buf, cap, AGENT_ERR, id);
    agent_wr_u32(&w, err);
    agent_wr_str(&w, text, len > 1024 ? 1024 : len);
    return agent_wr_end(&w);
}

size_t agent_enc_metrics(uint8_t *buf, size_t cap, uint32_t id, const struct agent_metrics *m) {
    struct agent_wr w;
    agent_wr_begin(&w, buf, cap, AGENT_METRICS_R, id);
    agent_wr_u64(&w, m->mem_total);
    agent_wr_u64(&w, m->mem_available);
    agent_wr_u64(&w, m->cpu_user);
    agent_wr_u64(&w, m->cpu_system);
    agent_wr_u64(&w, m->cpu_idle);
    agent_wr_u64(&w, m->uptime_ms);
    agent_wr_u32(&w, m->load1);
    agent_wr_u32(&w, m->load5);
    agent_wr_u32(&w, m->load15);
    agent_wr_u32(&w, m->nprocs);
    return agent_wr_end(&w);
}

/* The count sits right after the header; entries follow it. */
void agent_ps_list_begin(struct agent_wr *w, uint8_t *buf, size_t cap, uint32_t id) {
    agent_wr_begin(w, buf, cap, AGENT_PS_LIST, id);
    agent_wr_u32(w, 0);
}

/* Appends e only if all of it fits: on overflow the frame is rolled back to before e. */
int agent_ps_list_add(struct agent_wr *w, const struct agent_ps_entry *e) {
    size_t mark = w->len;
    int added = 0;
    if (w->err)
        goto out;
    agent_wr_u32(w, e->pid);
    agent_wr_u32(w, e->ppid);
    agent_wr_u8(w, e->state);
    agent_wr_u64(w, e->rss_bytes);
    agent_wr_str(w, e->name.ptr, e->name.len);
    agent_wr_str(w, e->cmdline.ptr, e->cmdline.len);
    if (w->err) {
        w->err = 0;
        w->len = mark;
    } else {
        put_u32(w->buf + AGENT_HDR_LEN, get_u32(w->buf + AGENT_HDR_LEN) + 1);
        added = 1;
    }
out:
    return added;
}

size_t agent_ps_list_end(struct agent_wr *w) {
    return agent_wr_end(w);
}
