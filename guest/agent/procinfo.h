/* PS and METRICS answers, from the guest's /proc. */
#ifndef SBX_AGENT_PROCINFO_H
#define SBX_AGENT_PROCINFO_H

#include <stdint.h>

/* Queues PS_LIST for id: every process that fits in one frame. */
void procinfo_ps(uint32_t id);
/* Queues METRICS_R for id (from /proc/meminfo, /proc/stat, /proc/uptime, /proc/loadavg). */
void procinfo_metrics(uint32_t id);

#endif
