/* The guest agent's shared state and the helpers every part uses to queue frames for the
 * host. One process, one poll loop, no threads: nothing here is locked. */
#ifndef SBX_AGENT_AGENT_H
#define SBX_AGENT_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "outq.h"
#include "vmproto/agent_proto.h"

#define AGENT_VERSION "0.1.0"

/* The output queue: 3 MiB. Streams (command output, file reads) stop adding to it past
 * STREAM_LIMIT; the port is only read while a whole largest reply (a PS_LIST) still fits.
 * So small answers (STARTED, EXIT, ERR, OK) always find room. */
#define OUTQ_CAP     (3u * 1024u * 1024u)
#define STREAM_LIMIT (1024u * 1024u)
#define INPUT_ROOM   (AGENT_MAX_FRAME_LEN + 4u + 4096u)

/* Whether a stream may queue one more chunk now. */
int agent_stream_room(void);

/* Queues a whole frame built in f[0..n) (n == 0 means the encoder failed: logged). Small
 * answers never find the queue full (see OUTQ_CAP); if one ever did, it is logged and
 * dropped. */
void agent_send(const uint8_t *f, size_t n);

/* Queues ERR {err, text} for id. */
void agent_send_err(uint32_t id, int err, const char *text);

/* The queue itself, for the parts that build large frames in place (PS_LIST). */
struct outq *agent_outq(void);

/* Set by --verbose / sbx.debug=1: log every request. */
extern int agent_debug;

#endif
