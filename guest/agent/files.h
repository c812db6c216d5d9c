/* File transfers for the host: WRITE + DATA* + END (answered OK or ERR once), and READ
 * (answered DATA* + END, or ERR). Only regular files; absolute paths. At most XFER_MAX at
 * once; a new HELLO drops them all. */
#ifndef SBX_AGENT_FILES_H
#define SBX_AGENT_FILES_H

#include <stdint.h>

#include "vmproto/agent_proto.h"

#define XFER_MAX 16

void files_write(uint32_t id, const struct agent_write_req *req);
void files_data(uint32_t id, struct agent_str data);
void files_end(uint32_t id);
void files_read(uint32_t id, struct agent_str path);
/* Sends READ chunks while the output queue has room. Returns 1 if reads are still pending
 * (and there was room, so the loop must not sleep), else 0. */
int files_pump(void);
/* A new connection: every transfer is closed (a half-written file stays as it is). */
void files_reset(void);

#endif
