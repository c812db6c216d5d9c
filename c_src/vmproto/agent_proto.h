/* The sandboxd guest agent protocol: the framed messages exchanged between sandboxd (the
 * host) and the agent running inside a VM (the guest) over the virtio-serial port named
 * "org.sandboxd.agent". Pure C11: no libevent, no allocation. Both sides build this file.
 *
 * ---- Frame ---------------------------------------------------------------------------------
 *
 *   u32 len      big-endian; the number of bytes that follow (type + id + payload).
 *                5 <= len <= AGENT_MAX_FRAME_LEN (= 5 + AGENT_MAX_PAYLOAD). Anything else is
 *                a protocol error: the host drops the connection, the guest discards its
 *                stream state and waits for the next HELLO.
 *   u8  type     one of enum agent_type.
 *   u32 id       big-endian request id. The host picks it; every answer carries the id of
 *                its request. Id 0 is reserved for the main workload (`cmd`).
 *   ... payload  len - 5 bytes, laid out per type below.
 *
 * Payload primitives: u8, u32 and u64 are unsigned big-endian; i32 is a two's-complement u32;
 * str is u32 length + that many bytes (no terminator, may hold any byte); bytes is a str.
 * A payload must be consumed exactly: trailing bytes are a malformed message (answered ERR).
 *
 * ---- Messages (H = host to guest, G = guest to host) -------------------------------------
 *
 *  HELLO    1  H: u32 min_version, u32 max_version.
 *              G: u32 version, str kernel_release, str agent_version, u64 boot_ms
 *                 (CLOCK_BOOTTIME ms in the guest when it answered).
 *              The host speaks first on every connection. A HELLO resets the guest's stream
 *              (the previous connection may have left half a frame) and kills the execs the
 *              previous connection started (not the main workload, id 0) and drops its file
 *              transfers. The guest answers with the highest version in both ranges, or ERR
 *              EPROTONOSUPPORT if the ranges do not meet. The answer goes out before the main
 *              workload's OUT/EXIT frames still queued from before (they are kept, in order;
 *              the old connection's other answers are dropped). A host that says HELLO
 *              again before the answer gets one answer per HELLO. Use a nonzero id.
 *  EXEC     2  H: u32 flags (AGENT_EXEC_MAIN, AGENT_EXEC_STDIN), u32 timeout_ms (0 = none),
 *                 u32 argc, argc x str argv, u32 envc, envc x str env ("KEY=VALUE"),
 *                 str cwd (empty = "/").
 *              The main workload is EXEC with AGENT_EXEC_MAIN and id 0 (and only then).
 *              Answer: STARTED then OUT* then EXIT; or ERR if it could not be started (then
 *              nothing else for that id). Each command runs in its own session (setsid), so
 *              KILL and the timeout reach its whole process group (a child that makes its
 *              own session escapes both). The environment is PATH (the usual directories)
 *              and HOME=/root, with env's entries added or replacing them. argv[0] is looked
 *              up in PATH. Without AGENT_EXEC_STDIN the command's stdin is /dev/null.
 *              EXIT comes once the command has been reaped and its stdout and stderr are at
 *              EOF, or 2 s after the reap if background children keep them open.
 *  STARTED  3  G: u32 pid.
 *  OUT      4  G: u8 stream (1 stdout, 2 stderr), bytes data (1 .. AGENT_CHUNK bytes).
 *  EXIT     5  G: i32 exit_code (-1 when killed by a signal), u32 signal (0 = none),
 *                 u8 timed_out (1 when the guest's timeout killed it).
 *  STDIN    6  H: bytes data; empty data closes the command's stdin (EOF).
 *              No answer (ERR for an unknown id or a command without AGENT_EXEC_STDIN;
 *              ERR ENOBUFS if more than 320 KiB wait for a command that does not read:
 *              past 256 KiB waiting the guest stops reading the port until it drains).
 *              Bytes after the command exited or closed its stdin are dropped.
 *  KILL     7  H: empty. Sends SIGKILL to the process group of the command with this id.
 *              No answer on success (its EXIT follows); ERR ESRCH for an unknown id.
 *  WRITE    8  H: str path, u32 mode (permission bits). Creates or truncates the file.
 *              Then DATA* and END with the same id. Answer: exactly one of OK (after END)
 *              or ERR (at the first failure; later DATA/END of that id are ignored).
 *  READ     9  H: str path. Answer: DATA* then END, or ERR (possibly after some DATA).
 *              Paths must be absolute; only regular files are read or written (ERR EISDIR
 *              or EINVAL otherwise). At most 16 transfers at once (ERR EAGAIN).
 *  DATA    10  H/G: bytes data (at most AGENT_CHUNK bytes).
 *  END     11  H/G: empty.
 *  OK      12  G: empty.
 *  ERR     13  G: u32 errno (Linux numbering), str text.
 *  PS      14  H: empty. Answer: PS_LIST.
 *  PS_LIST 15  G: u32 count, then count x { u32 pid, u32 ppid, u8 state (the /proc state
 *              letter), u64 rss_bytes, str name (comm), str cmdline (arguments joined by
 *              spaces, at most AGENT_PS_CMDLINE bytes) }. Processes that do not fit in one
 *              frame are left out.
 *  METRICS 16  H: empty. Answer: METRICS_R.
 *  METRICS_R 17 G: u64 mem_total_bytes, u64 mem_available_bytes, u64 cpu_user_ticks,
 *              u64 cpu_system_ticks, u64 cpu_idle_ticks (the "cpu" line of /proc/stat, user
 *              includes nice), u64 uptime_ms, u32 load1, u32 load5, u32 load15 (the load
 *              averages times 1000), u32 nprocs (tasks: the total of /proc/loadavg).
 *  SHUTDOWN 18 H: empty. The guest answers OK, kills every process, syncs and powers off.
 *
 * Any request the guest cannot do, or does not know, is answered ERR with its id; the guest
 * never stops on input. A connection starts in resync: the guest skips bytes until a HELLO
 * header (00 00 00 0d 01) and decodes from there, so bytes an old connection left unread are
 * not taken for requests; a bad len field puts the stream back in resync. Requests after a
 * HELLO that found no common version are answered ERR EPROTO. The guest notices the host
 * closing the socket (POLLHUP on the port) and then expects a new HELLO. Output (OUT, DATA) is sent in chunks
 * of at most AGENT_CHUNK bytes. Flow control is the transport's: a host that stops reading blocks the guest's writes, and
 * the guest then stops reading its commands' pipes; nothing is dropped. */
#ifndef SBX_VMPROTO_AGENT_PROTO_H
#define SBX_VMPROTO_AGENT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_PORT_NAME     "org.sandboxd.agent"
#define AGENT_PROTO_VERSION 1u
#define AGENT_HDR_LEN       9u                    /* u32 len + u8 type + u32 id */
#define AGENT_MAX_PAYLOAD   (1024u * 1024u)       /* 1 MiB */
#define AGENT_MAX_FRAME_LEN (AGENT_MAX_PAYLOAD + 5u) /* largest value of the len field */
#define AGENT_CHUNK         (64u * 1024u)         /* largest OUT / DATA data */
#define AGENT_MAX_ARGS      256u                  /* largest argc and envc in EXEC */
#define AGENT_PS_CMDLINE    512u                  /* largest cmdline in a PS_LIST entry */
#define AGENT_MAIN_ID       0u

enum agent_type {
    AGENT_HELLO = 1,
    AGENT_EXEC = 2,
    AGENT_STARTED = 3,
    AGENT_OUT = 4,
    AGENT_EXIT = 5,
    AGENT_STDIN = 6,
    AGENT_KILL = 7,
    AGENT_WRITE = 8,
    AGENT_READ = 9,
    AGENT_DATA = 10,
    AGENT_END = 11,
    AGENT_OK = 12,
    AGENT_ERR = 13,
    AGENT_PS = 14,
    AGENT_PS_LIST = 15,
    AGENT_METRICS = 16,
    AGENT_METRICS_R = 17,
    AGENT_SHUTDOWN = 18,
};

#define AGENT_EXEC_MAIN  0x1u /* the main workload (id must be 0) */
#define AGENT_EXEC_STDIN 0x2u /* the host will send STDIN frames */
#define AGENT_EXEC_FLAGS (AGENT_EXEC_MAIN | AGENT_EXEC_STDIN)

/* The name of a message type ("hello", ...), or "unknown". Static storage. */
const char *agent_type_name(unsigned type);

/* ---- Decoder: bytes in, whole frames out --------------------------------------------------- */

/* A frame as decoded: payload points into the decoder's buffer, valid until the next call
 * to agent_dec_feed or agent_dec_reset. */
struct agent_frame {
    uint8_t type;
    uint32_t id;
    const uint8_t *payload;
    uint32_t payload_len;
};

enum agent_dec_status {
    AGENT_DEC_NEED = 0,  /* every offered byte was consumed; feed more */
    AGENT_DEC_FRAME = 1, /* a frame is in *out; feed the rest of the bytes next */
    AGENT_DEC_ERROR = 2, /* bad length: the decoder stays in error until agent_dec_reset */
};

/* Incremental decoder. The caller owns it and the payload buffer it was given; the decoder
 * never allocates and never writes past buf[cap). A frame whose payload is larger than cap
 * (cap <= AGENT_MAX_PAYLOAD) or whose len field is out of range is an error. */
struct agent_dec {
    uint8_t *buf;
    uint32_t cap;
    uint8_t hdr[AGENT_HDR_LEN];
    uint32_t hdr_have;
    uint32_t payload_len;
    uint32_t payload_have;
    int error;
};

/* Initialises d over the caller's buffer buf of cap bytes (cap > AGENT_MAX_PAYLOAD is treated
 * as AGENT_MAX_PAYLOAD). */
void agent_dec_init(struct agent_dec *d, uint8_t *buf, size_t cap);

/* Forgets any partial frame and the error state (a new connection, or a new HELLO). */
void agent_dec_reset(struct agent_dec *d);

/* Consumes bytes from in[0..n): sets *used to how many were consumed and returns NEED (all
 * consumed, no frame complete), FRAME (a frame completed after *used bytes: *out is set) or
 * ERROR (*used bytes consumed, the len field was out of range). Call again with in + *used
 * for the rest. */
enum agent_dec_status agent_dec_feed(struct agent_dec *d, const uint8_t *in, size_t n,
                                     size_t *used, struct agent_frame *out);

/* ---- Payload reader ------------------------------------------------------------------------ */

/* A slice of bytes inside a payload (not NUL-terminated). */
struct agent_str {
    const uint8_t *ptr;
    uint32_t len;
};

/* A cursor over a payload. Reads past the end set err and yield zeros / empty strings, so a
 * parser checks err once at the end. */
struct agent_rd {
    const uint8_t *p;
    uint32_t left;
    int err;
};

void agent_rd_init(struct agent_rd *r, const uint8_t *payload, uint32_t len);
uint8_t agent_rd_u8(struct agent_rd *r);
uint32_t agent_rd_u32(struct agent_rd *r);
uint64_t agent_rd_u64(struct agent_rd *r);
struct agent_str agent_rd_str(struct agent_rd *r);
/* 0 if no read failed and the payload was consumed exactly, else -1. */
int agent_rd_done(const struct agent_rd *r);

/* ---- Writer: frames into a caller's buffer ---------------------------------------------------- */

/* A frame being built in buf[0..cap). Writes past cap or past AGENT_MAX_FRAME_LEN set err and
 * write nothing more; agent_wr_end then fails. */
struct agent_wr {
    uint8_t *buf;
    size_t cap;
    size_t len;
    int err;
};

/* Starts a frame of type and id in buf (the header is filled in by agent_wr_end). */
void agent_wr_begin(struct agent_wr *w, uint8_t *buf, size_t cap, uint8_t type, uint32_t id);
void agent_wr_u8(struct agent_wr *w, uint8_t v);
void agent_wr_u32(struct agent_wr *w, uint32_t v);
void agent_wr_u64(struct agent_wr *w, uint64_t v);
void agent_wr_str(struct agent_wr *w, const void *data, size_t len);
/* Bytes the frame may still take in its payload (bounded by cap and the frame limit). */
size_t agent_wr_room(const struct agent_wr *w);
/* Finishes the frame: returns its total size (header included) or 0 on overflow. */
size_t agent_wr_end(struct agent_wr *w);

/* ---- Typed messages -------------------------------------------------------------------------- */

struct agent_hello_req {
    uint32_t min_version, max_version;
};

struct agent_hello_resp {
    uint32_t version;
    struct agent_str kernel_release;
    struct agent_str agent_version;
    uint64_t boot_ms;
};

struct agent_exec_req {
    uint32_t flags;
    uint32_t timeout_ms;
    uint32_t argc, envc;
    struct agent_str argv[AGENT_MAX_ARGS];
    struct agent_str env[AGENT_MAX_ARGS];
    struct agent_str cwd;
};

struct agent_exit_msg {
    int32_t exit_code;
    uint32_t signal;
    uint8_t timed_out;
};

struct agent_err_msg {
    uint32_t err;
    struct agent_str text;
};

struct agent_write_req {
    struct agent_str path;
    uint32_t mode;
};

struct agent_ps_entry {
    uint32_t pid, ppid;
    uint8_t state;
    uint64_t rss_bytes;
    struct agent_str name;
    struct agent_str cmdline;
};

struct agent_metrics {
    uint64_t mem_total, mem_available;
    uint64_t cpu_user, cpu_system, cpu_idle;
    uint64_t uptime_ms;
    uint32_t load1, load5, load15;
    uint32_t nprocs;
};

/* Parsers: fill *m from a frame's payload; 0 on success, -1 if it is malformed (wrong size,
 * a string past the end, argc/envc over AGENT_MAX_ARGS, an OUT stream other than 1 or 2, or
 * OUT data over AGENT_CHUNK, unknown EXEC flags, or MAIN with a nonzero id).
 * Strings point into the payload. */
int agent_parse_hello_req(const struct agent_frame *f, struct agent_hello_req *m);
int agent_parse_hello_resp(const struct agent_frame *f, struct agent_hello_resp *m);
int agent_parse_exec(const struct agent_frame *f, struct agent_exec_req *m);
int agent_parse_started(const struct agent_frame *f, uint32_t *pid);
int agent_parse_out(const struct agent_frame *f, uint8_t *stream, struct agent_str *data);
int agent_parse_exit(const struct agent_frame *f, struct agent_exit_msg *m);
int agent_parse_bytes(const struct agent_frame *f, struct agent_str *data); /* STDIN, DATA */
int agent_parse_empty(const struct agent_frame *f); /* KILL, END, OK, PS, METRICS, SHUTDOWN */
int agent_parse_write(const struct agent_frame *f, struct agent_write_req *m);
int agent_parse_read(const struct agent_frame *f, struct agent_str *path);
int agent_parse_err(const struct agent_frame *f, struct agent_err_msg *m);
int agent_parse_metrics(const struct agent_frame *f, struct agent_metrics *m);

/* PS_LIST: agent_ps_begin reads the count into *count and leaves r at the first entry;
 * agent_ps_next reads one entry. Both return 0 or -1 (malformed). After count entries,
 * agent_rd_done(r) tells whether the payload held exactly that. */
int agent_ps_begin(const struct agent_frame *f, struct agent_rd *r, uint32_t *count);
int agent_ps_next(struct agent_rd *r, struct agent_ps_entry *e);

/* Encoders: write one whole frame into buf[0..cap) and return its size, or 0 if it does not
 * fit (in cap or in AGENT_MAX_FRAME_LEN). */
size_t agent_enc_hello_req(uint8_t *buf, size_t cap, uint32_t id, uint32_t min_version,
                           uint32_t max_version);
size_t agent_enc_hello_resp(uint8_t *buf, size_t cap, uint32_t id,
                            const struct agent_hello_resp *m);
/* argv[argc] and env[envc] are NUL-terminated strings; cwd may be NULL (= ""). */
size_t agent_enc_exec(uint8_t *buf, size_t cap, uint32_t id, uint32_t flags, uint32_t timeout_ms,
                      const char *const *argv, uint32_t argc, const char *const *env,
                      uint32_t envc, const char *cwd);
size_t agent_enc_started(uint8_t *buf, size_t cap, uint32_t id, uint32_t pid);
size_t agent_enc_out(uint8_t *buf, size_t cap, uint32_t id, uint8_t stream, const void *data,
                     size_t len);
size_t agent_enc_exit(uint8_t *buf, size_t cap, uint32_t id, const struct agent_exit_msg *m);
/* STDIN or DATA with data (len <= AGENT_CHUNK). */
size_t agent_enc_bytes(uint8_t *buf, size_t cap, uint8_t type, uint32_t id, const void *data,
                       size_t len);
/* A message with an empty payload (KILL, END, OK, PS, METRICS, SHUTDOWN). */
size_t agent_enc_empty(uint8_t *buf, size_t cap, uint8_t type, uint32_t id);
size_t agent_enc_write(uint8_t *buf, size_t cap, uint32_t id, const char *path, uint32_t mode);
size_t agent_enc_read(uint8_t *buf, size_t cap, uint32_t id, const char *path);
/* ERR: text is truncated to 1024 bytes. */
size_t agent_enc_err(uint8_t *buf, size_t cap, uint32_t id, uint32_t err, const char *text);
size_t agent_enc_metrics(uint8_t *buf, size_t cap, uint32_t id, const struct agent_metrics *m);

/* PS_LIST is built entry by entry: agent_ps_list_begin starts the frame (count 0),
 * agent_ps_list_add appends an entry if it fits (1) or leaves the frame as it was (0), and
 * agent_ps_list_end writes the count and returns the frame size. */
void agent_ps_list_begin(struct agent_wr *w, uint8_t *buf, size_t cap, uint32_t id);
int agent_ps_list_add(struct agent_wr *w, const struct agent_ps_entry *e);
size_t agent_ps_list_end(struct agent_wr *w);

#endif
