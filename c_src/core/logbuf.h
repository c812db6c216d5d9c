/* A sandbox's output: a bounded ring of timestamped lines in memory, persisted to a
 * file so that it survives a restart of sandboxd.
 *
 * Chunks read from a sandbox's stdout/stderr are fed in; complete lines become records
 * {ts, stream, data} (data without the newline); a partial line waits for the rest, up
 * to SBX_LOGBUF_MAX_LINE bytes, after which it is cut into a record of its own. When the
 * ring holds more than max_bytes of data the oldest records are dropped (and when it
 * holds more than max_bytes / 32 + 1 records, so that empty or tiny lines cannot grow it
 * without bound). The file holds the same records (binary, append-only; each written
 * before the feed that made it returns) and is compacted to the ring's contents when it
 * grows past 2 x max_bytes and at least half of it is records the ring no longer holds
 * (records cost 24 bytes each on top of their data, so with short lines the ring alone
 * can take more than max_bytes there), so disk use is bounded too. The format is
 * described in logbuf.c. */
#ifndef SBX_CORE_LOGBUF_H
#define SBX_CORE_LOGBUF_H

#include <stddef.h>
#include <stdint.h>

#define SBX_LOGBUF_MAX_LINE (64 * 1024)

/* Where a line came from: the workload's stdout or stderr, or a machine's console (a vm's
 * serial port: the guest kernel's and init's own lines). */
enum sbx_stream { SBX_STREAM_STDOUT = 0, SBX_STREAM_STDERR = 1, SBX_STREAM_CONSOLE = 2 };
#define SBX_STREAM_COUNT 3

/* The stream's atom (and JSON) name: "stdout", "stderr" or "console". */
const char *sbx_stream_name(enum sbx_stream stream);

struct sbx_logbuf;

/* Opens (creating if needed, mode 0600; never through a symlink) the log file at path and
 * loads the newest records it holds (up to max_bytes of data, at most 1 GiB). NULL on
 * failure (errno set; EINVAL for a file that is not a log file, which is left alone); a
 * damaged tail of the file (e.g. a record cut by a crash) is ignored and truncated away. */
struct sbx_logbuf *sbx_logbuf_open(const char *path, size_t max_bytes);

/* Flushes a pending partial line of each stream as a record (with the ts of the last
 * chunk fed to it), closes the file and frees everything. Safe on NULL. */
void sbx_logbuf_close(struct sbx_logbuf *lb);

/* Called for every complete record fed in, in order. */
typedef void (*sbx_logbuf_emit_fn)(void *arg, int64_t ts, enum sbx_stream stream,
                                   const char *data, size_t len);

/* Feeds a chunk read at time ts from stream. Each complete line is stored (memory and
 * file) and passed to emit (may be NULL). Only '\n' ends a line ('\r' stays in the
 * data); a record's ts is that of the chunk that completes it. Returns 0, or -1 if the
 * file write failed (the records are still kept in memory, and the next feed rewrites
 * the file with them). */
int sbx_logbuf_feed(struct sbx_logbuf *lb, int64_t ts, enum sbx_stream stream,
                    const char *data, size_t len, sbx_logbuf_emit_fn emit, void *arg);

/* Stores a partial line of stream as a record now (at exit, or before a restart). */
void sbx_logbuf_flush(struct sbx_logbuf *lb, int64_t ts, enum sbx_stream stream,
                      sbx_logbuf_emit_fn emit, void *arg);

/* Calls fn for the records with ts >= since, at most the newest `tail` of them (tail 0:
 * none), oldest first. data points into the ring: valid during the call only, and fn
 * must not feed lb. Returns how many were passed. */
size_t sbx_logbuf_query(const struct sbx_logbuf *lb, size_t tail, int64_t since,
                        sbx_logbuf_emit_fn fn, void *arg);

/* Bytes of line data held in memory (for info/bench), and number of records. */
size_t sbx_logbuf_bytes(const struct sbx_logbuf *lb);
size_t sbx_logbuf_count(const struct sbx_logbuf *lb);

#endif
