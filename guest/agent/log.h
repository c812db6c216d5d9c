/* Console logging of the guest agent: one line per event on fd 2, which is /dev/console once
 * the agent has set it up (it becomes the sandbox's `console` log stream on the host). */
#ifndef SBX_AGENT_LOG_H
#define SBX_AGENT_LOG_H

#include <stdint.h>

/* Milliseconds of CLOCK_MONOTONIC. */
int64_t agent_now_ms(void);

/* Writes "sbx-agent: <message>\n" to fd 2; never fails, never blocks longer than the write. */
void agent_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
