/* Commands run for the host: EXEC (the main workload with id 0, or any other), their output
 * streamed as OUT frames, STDIN, KILL, the guest-side timeout, and EXIT once the command has
 * been reaped and its output drained. Each command is a session leader (setsid), so KILL and
 * the timeout reach its whole process group. At most CMD_MAX commands at once. */
#ifndef SBX_AGENT_CMD_H
#define SBX_AGENT_CMD_H

#include <poll.h>
#include <stdint.h>

#include "vmproto/agent_proto.h"

#define CMD_MAX 64
/* Largest number of pollfds cmds_poll_fill adds. */
#define CMD_POLLFDS (CMD_MAX * 4)

/* EXEC: starts the command (STARTED follows once it runs, or ERR if it cannot). */
void cmd_exec(uint32_t id, const struct agent_exec_req *req);
/* STDIN for id (empty data = EOF). */
void cmd_stdin(uint32_t id, struct agent_str data);
/* KILL for id: SIGKILL to its process group. */
void cmd_kill(uint32_t id);
/* A new HELLO: every command but the main workload is killed and forgotten by the host (its
 * output and EXIT are no longer sent). */
void cmds_detach(void);
/* Whether some command's stdin buffer is so full that the port must not be read. */
int cmds_stdin_full(void);

/* Appends the command fds to poll to pfd (at most CMD_POLLFDS); returns how many. */
int cmds_poll_fill(struct pollfd *pfd);
/* Handles the poll results of the fds cmds_poll_fill added (same order, same count). */
void cmds_poll_done(const struct pollfd *pfd, int n);
/* SIGCHLD: reaps every child (orphans included) without blocking. */
void cmds_reap(void);
/* Timeouts, exit grace and EXIT frames; returns ms until the next deadline (-1 = none). */
int cmds_tick(void);

#endif
