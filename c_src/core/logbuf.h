/* A sandbox's output: a bounded ring of timestamped lines in memory, persisted to a
 * file so that it survives a restart of sandboxd.
 *
 * Chunks read from a sandbox's stdout/stderr are fed in; complete lines become records
 * {ts, stream, data} (data without the newline); a partial line waits for the rest, up
 * to SBX_LOGBUF_MAX_LINE bytes, after which it is cut into a record of its own. When the
 * ring holds more than max_bytes of data the oldest records are dropped. The file holds
 * the same records (binary, append-only) and is compacted to the ring's contents when it
 * grows past 2 x max_bytes, so disk use is bounded too. */
#ifndef SBX_CORE_LOGBUF_H
#define SBX_CORE_LOGBUF_H

#include <stddef.h>
#include <stdint.h>

#define SBX_LOGBUF_MAX_LINE (64 * 1024)

enum sbx_stream { SBX_STREAM_STDOUT = 0, SBX_STREAM_STDERR = 1 };

struct sbx_logbuf;

/* Opens (creating if needed) the log file at path and loads the newest records it holds
 * (up to max_bytes of data). NULL on failure (errno set); a damaged tail of the file
 * (e.g. a record cut by a crash) is ignored and truncated away. */
struct sbx_logbuf *sbx_logbuf_open(const char *path, size_t max_bytes);

/* Flushes a pending partial line of each stream as a record, closes the file and frees
 * everything. Safe on NULL. */
void sbx_logbuf_close(struct sbx_logbuf *lb);

/* Called for every complete record fed in, in order. */
typedef void (*sbx_logbuf_emit_fn)(void *arg, int64_t ts, enum sbx_stream stream,
                                   const char *data, size_t len);

/* Feeds a chunk read at time ts from stream. Each complete line is stored (memory and
 * file) and passed to emit (may be NULL). Returns 0, or -1 if the file write failed (the
 * records are still kept in memory). */
int sbx_logbuf_feed(struct sbx_logbuf *lb, int64_t ts, enum sbx_stream stream,
                    const char *data, size_t len, sbx_logbuf_emit_fn emit, void *arg);

/* Stores a partial line of stream as a record now (at exit, or before a restart). */
void sbx_logbuf_flush(struct sbx_logbuf *lb, int64_t ts, enum sbx_stream stream,
                      sbx_logbuf_emit_fn emit, void *arg);

/* Calls fn for the records with ts >= since, at most the newest `tail` of them, oldest
 * first. Returns how many were passed. */
size_t sbx_logbuf_query(const struct sbx_logbuf *lb, size_t tail, int64_t since,
                        sbx_logbuf_emit_fn fn, void *arg);

/* Bytes of line data held in memory (for info/bench), and number of records. */
size_t sbx_logbuf_bytes(const struct sbx_logbuf *lb);
size_t sbx_logbuf_count(const struct sbx_logbuf *lb);

#endif
