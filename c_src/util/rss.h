/* sandboxd's own resident memory, for info() and /metrics. */
#ifndef SBX_UTIL_RSS_H
#define SBX_UTIL_RSS_H

/* Resident set size from /proc/self/statm, in bytes; 0 if unreadable. */
long long sbx_rss_bytes(void);

#endif
